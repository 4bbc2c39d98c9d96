import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '../errors.ts';
import type { MetricsReport } from '../metrics/types.ts';
import { type ExecutionStart, isAlive, journalKeys, readStart } from '../storage/execution-journal.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { openStore } from '../storage/s3-store.ts';
import type { ExecutionInput, FailureReport, PipelineConfig } from '../types.ts';
import { loadLocalDefinition } from './definition.ts';
import { localHistory, reportLocalFailure } from './failure-rule.ts';
import { localHandlers } from './handlers.ts';
import { journaledHandlers } from './journaled-handlers.ts';
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
  /**
   * Continue the run `runId` that failed or was interrupted, with the configuration it was
   * started with (`config` is ignored): Tasks that succeeded return their recorded results.
   */
  resume?: boolean;
}

export interface LocalRunResult extends ExecutionResult {
  runId: string;
  bucket: string;
  s3Directory: string;
  /** reports/<runId>/failure.json, when the run failed or was stopped and ReportFailure wrote it. */
  failure?: FailureReport;
  /** reports/<runId>/metrics.json, when the run got that far. */
  metrics?: MetricsReport;
  /** report.html copied into the workspace, to open in a browser. */
  reportFile?: string;
  /** Set when this was a resume: where it continued from, and how many Task results it reused. */
  resumed?: { fromState?: string; reusedTasks: number };
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

/** The configuration a run recorded at its start, after checking that it can be resumed. */
async function resumable(store: ObjectStore, runId: string): Promise<PipelineConfig> {
  const start = await readStart(store, runId);
  if (!start) {
    throw new InputError(
      `run ${runId} has no execution record in s3://${store.bucket}/runs/${runId}/execution/: only runs started by this version can be resumed; start a new one with \`dogbreed run\``,
    );
  }
  if (await store.head(keys.metrics(runId))) {
    throw new InputError(`run ${runId} already succeeded: \`dogbreed report ${runId}\` shows it`);
  }
  if (
    start.pid !== undefined &&
    start.pid !== process.pid &&
    start.host === hostname() &&
    isAlive(start.pid)
  ) {
    throw new InputError(
      `run ${runId} is still running (process ${start.pid}): wait for it or stop it first`,
    );
  }
  return start.config;
}

export async function runLocalPipeline(opts: LocalRunOptions): Promise<LocalRunResult> {
  const runId = opts.runId ?? newRunId();
  const s3Directory = join(opts.workspace, 's3');
  const s3 = await startLocalS3({ directory: s3Directory, bucket: LOCAL_BUCKET });
  const restoreEnv = useLocalS3(s3.endpoint, s3.bucket);
  try {
    const store = openStore({ bucket: s3.bucket, endpoint: s3.endpoint });
    const config = opts.resume ? await resumable(store, runId) : opts.config;
    // This attempt's failure, if any, is reported afresh; the last one's would misstate the run.
    if (opts.resume) await store.delete(keys.failure(runId));
    const start: ExecutionStart = {
      runId,
      config,
      startedAt: new Date().toISOString(),
      pid: process.pid,
      host: hostname(),
    };
    if (opts.resume) start.startedAt = (await readStart(store, runId))!.startedAt;
    await store.putJson(journalKeys.start(runId), start);
    const definition = await loadLocalDefinition();
    const journal = journaledHandlers({
      store,
      runId,
      handlers: localHandlers,
      definition,
      resume: opts.resume === true,
    });
    const history = localHistory();
    const input: ExecutionInput = { config };
    const result = await runStateMachine({
      definition,
      executionName: runId,
      input,
      handlers: journal.handlers,
      onEvent: (event) => {
        history.record(event);
        opts.onEvent?.(event);
      },
      signal: opts.signal,
    });
    await reportLocalFailure({ executionName: runId, input, result, history });
    const failure =
      result.status !== 'SUCCEEDED'
        ? await store.getJsonIfExists<FailureReport>(keys.failure(runId))
        : undefined;
    const metrics =
      result.status === 'SUCCEEDED'
        ? await store.getJsonIfExists<MetricsReport>(keys.metrics(runId))
        : undefined;
    let reportFile: string | undefined;
    if (metrics) {
      reportFile = join(opts.workspace, keys.reportHtml(runId));
      await mkdir(dirname(reportFile), { recursive: true });
      await writeFile(reportFile, await store.getBytes(keys.reportHtml(runId)));
    }
    const resumed = opts.resume
      ? { fromState: journal.state.fromState, reusedTasks: journal.state.reusedTasks }
      : undefined;
    return { ...result, runId, bucket: s3.bucket, s3Directory, failure, metrics, reportFile, resumed };
  } finally {
    restoreEnv();
    await s3.close();
  }
}
