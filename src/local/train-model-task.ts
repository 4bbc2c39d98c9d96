import { fileURLToPath } from 'node:url';
import type { Context } from 'aws-lambda';
import { InputError } from '../errors.ts';
import { logger } from '../log.ts';
import { callLogEnv } from '../storage/call-log.ts';
import { array, object, string } from '../validate.ts';
import { runBatchJob } from './batch-runner.ts';

// The TrainModel state (batch:submitJob.sync) on the embedded default: the same
// submitJob parameters, run as a local child process instead of a GPU Batch job.

const root = fileURLToPath(new URL('../../', import.meta.url));
export const TRAIN_COMMAND = [process.execPath, `${root}bin/tsnode.mjs`, `${root}batch-job/train.ts`];

/** AWS Batch refuses container overrides over 8 KiB. */
export const MAX_OVERRIDES_BYTES = 8192;

export function parseSubmitJob(params: unknown): { jobName: string; env: Record<string, string> } {
  const p = object(params, 'TrainModel parameters');
  const overrides = object(p.ContainerOverrides, 'ContainerOverrides');
  const size = Buffer.byteLength(JSON.stringify(overrides));
  if (size > MAX_OVERRIDES_BYTES) {
    throw new InputError(
      `ContainerOverrides is ${size} bytes, over AWS Batch's 8 KiB limit: pass S3 keys, not lists`,
    );
  }
  const env: Record<string, string> = {};
  array(overrides.Environment ?? [], 'ContainerOverrides.Environment').forEach((item, i) => {
    const e = object(item, `ContainerOverrides.Environment[${i}]`);
    env[string(e.Name, `ContainerOverrides.Environment[${i}].Name`)] = String(e.Value ?? '');
  });
  return { jobName: string(p.JobName, 'JobName'), env };
}

export async function trainModelTask(params: unknown, context: Context): Promise<unknown> {
  const { jobName, env } = parseSubmitJob(params);
  return runBatchJob({
    jobName,
    command: TRAIN_COMMAND,
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
