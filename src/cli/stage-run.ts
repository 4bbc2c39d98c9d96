import { basename } from 'node:path';
import {
  executionArnOf,
  followExecution,
  redriveExecution,
  type SFNClient,
  sfnClient,
  startExecution,
} from '../aws/execution.ts';
import { resolveStage } from '../aws/stage.ts';
import { openSource, parseSource } from '../dataset/sources.ts';
import { newRunId } from '../local/pipeline.ts';
import type { MetricsReport } from '../metrics/types.ts';
import { appendResume } from '../storage/execution-journal.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { ExecutionInput, FailureReport, PipelineConfig } from '../types.ts';
import type { Progress } from './progress.ts';
import { printMetrics } from './report-commands.ts';
import { withStore } from './workspace.ts';

// `dogbreed run --stage NAME`: the same run on a deployed stage — an execution of the deployed
// state machine, followed through its history with the same progress display.

export interface StageRunOptions {
  stage: string;
  region?: string;
  wait: boolean;
  progress: Progress;
  log: (line: string) => void;
  signal?: AbortSignal;
  /** Injected in tests; created from the stage's region otherwise. */
  sfn?: SFNClient;
  /** History polling interval. */
  pollMs?: number;
}

/** A local file or directory source is uploaded to the stage's bucket first: Lambda cannot read this disk. */
async function stageSource(store: ObjectStore, source: string, log: (line: string) => void): Promise<string> {
  const ref = parseSource(source);
  if (ref.kind !== 'path') return source;
  const key = `datasets/_uploads/${basename(ref.path).replace(/\.tar$/, '')}.tar`;
  log(`uploading ${ref.path} to s3://${store.bucket}/${key}`);
  await store.upload(key, await openSource(ref, store), { contentType: 'application/x-tar' });
  return `s3://${store.bucket}/${key}`;
}

export async function runOnStage(config: PipelineConfig, opts: StageRunOptions): Promise<number> {
  const stage = await resolveStage(opts.stage, { region: opts.region });
  const sfn = opts.sfn ?? sfnClient(stage.region);
  return withStore({ stage: opts.stage, region: stage.region }, async (store) => {
    const runId = newRunId();
    const source = await stageSource(store, config.source, opts.log);
    const input: ExecutionInput = { config: { ...config, source } };
    const executionArn = await startExecution(sfn, stage.stateMachineArn, runId, input);
    opts.log(`run ${runId} started on stage ${stage.stage}: ${executionArn}`);
    return opts.wait ? followAndReport(sfn, store, runId, executionArn, opts) : 0;
  });
}

/**
 * `dogbreed resume RUN_ID --stage NAME`: Step Functions' RedriveExecution continues the failed
 * execution from its failed state (inside a Map, only the items that did not succeed), under
 * the same execution, so the states that succeeded — the GPU job among them — are not paid for
 * again.
 */
export async function resumeOnStage(runId: string, opts: StageRunOptions): Promise<number> {
  const stage = await resolveStage(opts.stage, { region: opts.region });
  const sfn = opts.sfn ?? sfnClient(stage.region);
  return withStore({ stage: opts.stage, region: stage.region }, async (store) => {
    const executionArn = executionArnOf(stage.stateMachineArn, runId);
    const fromState =
      (await store.getJsonIfExists<FailureReport>(keys.failure(runId)))?.state ??
      'the state that did not finish';
    await redriveExecution(sfn, executionArn);
    // WriteReport reads this to say the run was resumed; the last attempt's failure no longer holds.
    await appendResume(store, runId, { at: new Date().toISOString(), fromState, how: 'redrive' });
    await store.delete(keys.failure(runId));
    opts.log(`run ${runId} resumed on stage ${stage.stage} from ${fromState}: ${executionArn}`);
    return opts.wait ? followAndReport(sfn, store, runId, executionArn, opts, true) : 0;
  });
}

async function followAndReport(
  sfn: SFNClient,
  store: ObjectStore,
  runId: string,
  executionArn: string,
  opts: StageRunOptions,
  sinceRedrive = false,
): Promise<number> {
  const { log } = opts;
  const result = await followExecution(sfn, executionArn, {
    onEvent: opts.progress.onEvent,
    signal: opts.signal,
    pollMs: opts.pollMs,
    sinceRedrive,
  });
  if (result.status === 'SUCCEEDED') {
    printMetrics(await store.getJson<MetricsReport>(keys.metrics(runId)), log);
    log(`report: s3://${store.bucket}/${keys.reportHtml(runId)}`);
    return 0;
  }
  if (result.error === 'Detached') {
    log(`${result.cause}; stop it with: aws stepfunctions stop-execution --execution-arn ${executionArn}`);
    return 130;
  }
  const failure = await store.getJsonIfExists<FailureReport>(keys.failure(runId));
  const where = failure ? ` in ${failure.state}` : '';
  log(
    `run ${runId} ${result.status.toLowerCase()}${where}: ${failure?.error ?? result.error}: ${failure?.cause ?? result.cause}`,
  );
  if (failure) log(`failure report: s3://${store.bucket}/${keys.failure(runId)}`);
  log(`resume it with: dogbreed resume ${runId} --stage ${opts.stage}`);
  return 1;
}
