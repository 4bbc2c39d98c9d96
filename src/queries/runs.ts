import { hostname } from 'node:os';
import { InputError } from '../errors.ts';
import type { MetricsReport } from '../metrics/types.ts';
import { readChampion } from '../storage/champion.ts';
import { isAlive, readStart } from '../storage/execution-journal.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { FailureReport } from '../types.ts';

// What the bucket says about past runs: for `dogbreed runs`, `report` and `compare`.

/** `running`: its local process is alive; `interrupted`: it stopped without an end (resumable). */
export type RunStatus = 'succeeded' | 'failed' | 'running' | 'interrupted' | 'incomplete';

export interface RunSummaryRow {
  runId: string;
  startedAt?: string;
  status: RunStatus;
  datasetId?: string;
  accuracy?: number;
  macroF1?: number;
  gatePassed?: boolean;
  champion: boolean;
}

export type RunRecord =
  | { runId: string; status: 'succeeded'; metrics: MetricsReport }
  | { runId: string; status: 'failed'; failure: FailureReport }
  | { runId: string; status: 'running' | 'interrupted' | 'incomplete' };

/** Run ids look like 20261129-101000-587b: their start time, when they do. */
export function startedAt(runId: string): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-/.exec(runId);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z` : undefined;
}

async function runIds(store: ObjectStore): Promise<string[]> {
  const ids = new Set<string>();
  for await (const o of store.list('runs/')) {
    const m = /^runs\/([^/]+)\/(manifests\/classes|execution\/start)\.json$/.exec(o.key);
    if (m) ids.add(m[1]!);
  }
  for await (const o of store.list('reports/')) {
    const m = /^reports\/([^/]+)\/(metrics|failure)\.json$/.exec(o.key);
    if (m) ids.add(m[1]!);
  }
  return [...ids];
}

export async function readRun(store: ObjectStore, runId: string): Promise<RunRecord> {
  const metrics = await store.getJsonIfExists<MetricsReport>(keys.metrics(runId));
  if (metrics) return { runId, status: 'succeeded', metrics };
  const failure = await store.getJsonIfExists<FailureReport>(keys.failure(runId));
  if (failure) return { runId, status: 'failed', failure };
  const start = await readStart(store, runId);
  if (start) {
    const alive = start.pid !== undefined && start.host === hostname() && isAlive(start.pid);
    return { runId, status: alive ? 'running' : 'interrupted' };
  }
  if (await store.head(keys.classes(runId))) return { runId, status: 'incomplete' };
  throw new InputError(`no run ${runId} in s3://${store.bucket}: \`dogbreed runs\` lists the runs there`);
}

/** Every run, newest first. */
export async function listRuns(store: ObjectStore): Promise<RunSummaryRow[]> {
  const champion = await readChampion(store);
  const rows: RunSummaryRow[] = [];
  for (const runId of await runIds(store)) {
    const run = await readRun(store, runId);
    const classes =
      run.status === 'succeeded'
        ? undefined
        : await store.getJsonIfExists<{ datasetId?: string }>(keys.classes(runId));
    rows.push({
      runId,
      startedAt: startedAt(runId),
      status: run.status,
      datasetId: run.status === 'succeeded' ? run.metrics.dataset.datasetId : classes?.datasetId,
      accuracy: run.status === 'succeeded' ? run.metrics.accuracy : undefined,
      macroF1: run.status === 'succeeded' ? run.metrics.macro.f1 : undefined,
      gatePassed: run.status === 'succeeded' ? run.metrics.gate.passed : undefined,
      champion: champion?.runId === runId,
    });
  }
  return rows.sort((a, b) => (b.startedAt ?? b.runId).localeCompare(a.startedAt ?? a.runId));
}

/** `latest` means the newest run; anything else must be a run id. */
export async function resolveRunId(store: ObjectStore, ref: string): Promise<string> {
  if (ref !== 'latest') return ref;
  const [newest] = await listRuns(store);
  if (!newest) throw new InputError(`no runs in s3://${store.bucket} yet: start one with \`dogbreed run\``);
  return newest.runId;
}
