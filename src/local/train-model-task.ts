import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { ensureBundle, TRAIN_BUNDLE } from '../../bin/fresh-bundle.mjs';
import { InputError } from '../errors.ts';
import { logger } from '../log.ts';
import { list, object, text } from '../schema/fields.ts';
import { parseInput } from '../schema/parse.ts';
import { callLogEnv } from '../storage/call-log.ts';
import { runBatchJob } from './batch-runner.ts';

// The TrainModel state (batch:submitJob.sync) on the embedded default: the same
// submitJob parameters, run as a local child process instead of a GPU Batch job.

/** The container's command (batch-job/Dockerfile ENTRYPOINT) on the container's bundle, built
 * first when it is missing or older than its sources. */
export async function trainCommand(): Promise<string[]> {
  const bundle = await ensureBundle(TRAIN_BUNDLE, (line) => logger.info(line));
  return [process.execPath, '--enable-source-maps', bundle];
}

/** AWS Batch refuses container overrides over 8 KiB. */
export const MAX_OVERRIDES_BYTES = 8192;

/** The batch:submitJob.sync parameters of the TrainModel state, the part the local run uses. */
const SubmitJobSchema = object({
  JobName: text(),
  ContainerOverrides: object({
    Environment: list(object({ Name: text(), Value: z.unknown() })).default(() => []),
  }),
});

export function parseSubmitJob(params: unknown): { jobName: string; env: Record<string, string> } {
  const p = parseInput(SubmitJobSchema, params, { name: 'TrainModel parameters', bare: true });
  const size = Buffer.byteLength(
    JSON.stringify((params as { ContainerOverrides: unknown }).ContainerOverrides),
  );
  if (size > MAX_OVERRIDES_BYTES) {
    throw new InputError(
      `ContainerOverrides is ${size} bytes, over AWS Batch's 8 KiB limit: pass S3 keys, not lists`,
    );
  }
  const env = Object.fromEntries(
    p.ContainerOverrides.Environment.map((e) => [e.Name, String(e.Value ?? '')]),
  );
  return { jobName: p.JobName, env };
}

export async function trainModelTask(params: unknown, context: Context): Promise<unknown> {
  const { jobName, env } = parseSubmitJob(params);
  return runBatchJob({
    jobName,
    command: await trainCommand(),
    // The container reaches the same bucket the handlers use.
    env: {
      ...env,
      DOGBREED_BUCKET: process.env.DOGBREED_BUCKET ?? '',
      DOGBREED_S3_ENDPOINT: process.env.DOGBREED_S3_ENDPOINT ?? '',
      ...callLogEnv(),
    },
    timeoutMs: context.getRemainingTimeInMillis(),
    onLine: (line, stream) => (stream === 'stdout' ? logger.info(line) : logger.debug(line)),
  });
}
