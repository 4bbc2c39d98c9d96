import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { MetricsReport } from '../metrics/types.ts';
import { keys } from '../stages/keys.ts';
import { openStore } from '../storage/s3-store.ts';
import type { FailureReport, PipelineConfig } from '../types.ts';
import { loadLocalDefinition } from './definition.ts';
import { localHandlers } from './handlers.ts';
import { startLocalS3 } from './s3-server.ts';
import { type EventLog, type ExecutionResult, runStateMachine } from './step-functions.ts';

// The embedded default: a real S3-compatible server on loopback, the deployed ASL file run by
// a local Step Functions engine, the Lambda handlers called in-process.

export const LOCAL_BUCKET = 'dogbreed-local';

export interface LocalRunOptions {
  workspace: string;
  config: PipelineConfig;
  runId?: string;
  onEvent?: (event: EventLog) => void;
  signal?: AbortSignal;
}

export interface LocalRunResult extends ExecutionResult {
  runId: string;
  bucket: string;
  s3Directory: string;
  /** reports/<runId>/failure.json, when the run failed and ReportFailure wrote it. */
  failure?: FailureReport;
  /** reports/<runId>/metrics.json, when the run got that far. */
  metrics?: MetricsReport;
  /** report.html copied into the workspace, to open in a browser. */
  reportFile?: string;
}

export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Points the handlers' storage at the embedded server; returns a function that undoes it. */
export function useLocalS3(endpoint: string, bucket: string): () => void {
  const prev = { bucket: process.env.DOGBREED_BUCKET, endpoint: process.env.DOGBREED_S3_ENDPOINT };
  process.env.DOGBREED_BUCKET = bucket;
  process.env.DOGBREED_S3_ENDPOINT = endpoint;
  return () => {
    for (const [name, value] of [
      ['DOGBREED_BUCKET', prev.bucket],
      ['DOGBREED_S3_ENDPOINT', prev.endpoint],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

export async function runLocalPipeline(opts: LocalRunOptions): Promise<LocalRunResult> {
  const runId = opts.runId ?? newRunId();
  const s3Directory = join(opts.workspace, 's3');
  const s3 = await startLocalS3({ directory: s3Directory, bucket: LOCAL_BUCKET });
  const restoreEnv = useLocalS3(s3.endpoint, s3.bucket);
  try {
    const result = await runStateMachine({
      definition: await loadLocalDefinition(),
      executionName: runId,
      input: { config: opts.config },
      handlers: localHandlers,
      onEvent: opts.onEvent,
      signal: opts.signal,
    });
    const store = openStore({ bucket: s3.bucket, endpoint: s3.endpoint });
    const failure =
      result.status === 'FAILED' && (await store.head(keys.failure(runId)))
        ? await store.getJson<FailureReport>(keys.failure(runId))
        : undefined;
    let metrics: MetricsReport | undefined;
    let reportFile: string | undefined;
    if (result.status === 'SUCCEEDED' && (await store.head(keys.metrics(runId)))) {
      metrics = await store.getJson<MetricsReport>(keys.metrics(runId));
      reportFile = join(opts.workspace, keys.reportHtml(runId));
      await mkdir(dirname(reportFile), { recursive: true });
      await writeFile(reportFile, await store.getBytes(keys.reportHtml(runId)));
    }
    return { ...result, runId, bucket: s3.bucket, s3Directory, failure, metrics, reportFile };
  } finally {
    restoreEnv();
    await s3.close();
  }
}
