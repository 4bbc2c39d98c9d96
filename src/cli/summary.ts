import type { LocalRunResult } from '../local/pipeline.ts';
import type { GateResult, Promotion } from '../metrics/types.ts';
import { keys } from '../storage/layout.ts';
import type { FailureReport, FetchResult, ManifestsResult, ShardResult, VerifyResult } from '../types.ts';

// What `dogbreed run` reports at the end, as JSON (--json) or as text.

export interface RunSummary {
  runId: string;
  status: LocalRunResult['status'];
  error?: string;
  cause?: string;
  failure?: FailureReport;
  failureKey?: string;
  /** Set for `dogbreed resume`: the state it continued from and the Task results it reused. */
  resumed?: LocalRunResult['resumed'];
  timings: { state: string; seconds: number; status: string; iterations?: number }[];
  maxPayloadBytes: number;
  bucket: string;
  s3Directory: string;
  outputs?: {
    dataset: FetchResult;
    verify: VerifyResult;
    counts: ManifestsResult['counts'];
    manifestKeys: ManifestsResult['manifestKeys'];
    shards: { count: number; reused: number; images: number; bytes: number; prefix: string };
    model: { key: string; labelsKey: string; trainingKey: string; jobId: string };
    report?: {
      metricsKey: string;
      reportKey: string;
      reportFile?: string;
      accuracy: number;
      top5Accuracy: number;
      macroF1: number;
      weightedF1: number;
      logLoss: number;
      testImages: number;
      gate: GateResult;
      promotion: Promotion;
    };
  };
}

interface PipelineOutput {
  dataset: FetchResult;
  verify: VerifyResult;
  manifests: ManifestsResult;
  shards: ShardResult[];
  training: { jobId: string };
}

export function runSummary(result: LocalRunResult): RunSummary {
  const summary: RunSummary = {
    runId: result.runId,
    status: result.status,
    timings: result.timings
      // The states a person thinks of: Tasks and Maps at the top level, not plumbing.
      .filter((t) => t.endedAt !== undefined && !t.inMap && ['Task', 'Map', 'Parallel'].includes(t.type))
      .map((t) => ({
        state: t.state,
        seconds: Math.round((t.endedAt! - t.startedAt) / 10) / 100,
        status: t.status,
        ...(t.iterations ? { iterations: t.iterations.total } : {}),
      })),
    maxPayloadBytes: result.maxPayloadBytes,
    ...(result.resumed ? { resumed: result.resumed } : {}),
    bucket: result.bucket,
    s3Directory: result.s3Directory,
  };
  if (result.status !== 'SUCCEEDED') {
    return {
      ...summary,
      error: result.failure?.error ?? result.error,
      cause: result.failure?.cause ?? result.cause,
      failure: result.failure,
      failureKey: result.failure ? keys.failure(result.runId) : undefined,
    };
  }
  const out = result.output as PipelineOutput;
  summary.outputs = {
    dataset: out.dataset,
    verify: out.verify,
    counts: out.manifests.counts,
    manifestKeys: out.manifests.manifestKeys,
    shards: {
      count: out.shards.length,
      reused: out.shards.filter((s) => s.cached).length,
      images: out.shards.reduce((n, s) => n + s.images, 0),
      bytes: out.shards.reduce((n, s) => n + s.bytes, 0),
      prefix: `runs/${result.runId}/shards/`,
    },
    model: {
      key: keys.model(result.runId),
      labelsKey: keys.modelLabels(result.runId),
      trainingKey: keys.modelTraining(result.runId),
      jobId: out.training.jobId,
    },
    report: result.metrics && {
      metricsKey: keys.metrics(result.runId),
      reportKey: keys.reportHtml(result.runId),
      reportFile: result.reportFile,
      accuracy: result.metrics.accuracy,
      top5Accuracy: result.metrics.top5Accuracy,
      macroF1: result.metrics.macro.f1,
      weightedF1: result.metrics.weighted.f1,
      logLoss: result.metrics.logLoss,
      testImages: result.metrics.counts.test,
      gate: result.metrics.gate,
      promotion: result.metrics.promotion,
    },
  };
  return summary;
}

export function printRunSummary(s: RunSummary, log: (line: string) => void): void {
  log('');
  log('state                 seconds  status');
  for (const t of s.timings) {
    const extra = t.iterations ? ` (${t.iterations} shard${t.iterations === 1 ? '' : 's'})` : '';
    log(`${t.state.padEnd(20)} ${t.seconds.toFixed(2).padStart(8)}  ${t.status}${extra}`);
  }
  log('');
  if (s.resumed) {
    log(
      s.resumed.fromState
        ? `resumed from ${s.resumed.fromState}: ${s.resumed.reusedTasks} task results of the earlier attempt reused`
        : `resumed: all ${s.resumed.reusedTasks} task results came from the earlier attempt`,
    );
  }
  const s3 = (key: string) => `s3://${s.bucket}/${key}`;
  if (s.status === 'SUCCEEDED' && s.outputs) {
    const o = s.outputs;
    log(`run ${s.runId} succeeded`);
    log(
      `dataset   ${s3(o.dataset.tarKey)} (${o.verify.images} images, ${o.verify.classes} classes, ${o.verify.invalid} invalid${o.dataset.skipped ? ', already present: not fetched again' : ''})`,
    );
    log(
      `index     ${s3(o.verify.indexKey)}${o.verify.reused ? ' (verification reused: same sha256 and profile as before)' : ''}`,
    );
    log(
      `manifests train ${o.counts.train} · val ${o.counts.val} · test ${o.counts.test} → ${s3(`runs/${s.runId}/manifests/`)}`,
    );
    log(
      `shards    ${o.shards.count} shards (${o.shards.reused} reused from the step cache), ${o.shards.images} images, ${(o.shards.bytes / 1048576).toFixed(1)} MiB → ${s3(o.shards.prefix)}`,
    );
    log(`model     ${s3(o.model.key)} (training curves: ${s3(o.model.trainingKey)})`);
    const r = o.report;
    if (r) {
      const f = (x: number) => x.toFixed(3);
      log(
        `metrics   accuracy ${f(r.accuracy)} · top-5 ${f(r.top5Accuracy)} · macro F1 ${f(r.macroF1)} · weighted F1 ${f(r.weightedF1)} · log loss ${f(r.logLoss)} (${r.testImages} test images)`,
      );
      log(`gate      ${r.gate.passed ? 'passed' : 'FAILED'}: ${r.gate.reasons.join('; ')}`);
      log(`champion  ${r.promotion.reason}`);
      log(`report    ${r.reportFile ?? s3(r.reportKey)}  (metrics: ${s3(r.metricsKey)})`);
    }
    log(`local S3 data: ${s.s3Directory}`);
    return;
  }
  const where = s.failure ? ` in ${s.failure.state}` : '';
  log(`run ${s.runId} ${s.status === 'ABORTED' ? 'was stopped' : 'failed'}${where}: ${s.error}: ${s.cause}`);
  if (s.failureKey) log(`failure report: ${s3(s.failureKey)} (local S3 data: ${s.s3Directory})`);
}
