import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../src/cli/summary.ts';
import { withWorkspaceStore } from '../src/cli/workspace.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import type { MetricsReport } from '../src/metrics/types.ts';
import { keys } from '../src/storage/layout.ts';
import { cli } from './helpers/cli.ts';

// `dogbreed resume` after a hard kill: the CLI is SIGKILLed (no chance to clean up) in
// Preprocess and in TrainModel, and the resumed run must complete correctly, reusing what the
// killed one finished.

let dir: string;
let tar: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dogbreed-resume-'));
  tar = join(dir, 'sample.tar');
  await writeSampleTarball(tar, { classes: 6, perClass: 40, seed: 2 });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Starts `dogbreed run` as a child process and SIGKILLs it when its output matches `when`. */
async function runKilled(workspace: string, when: RegExp): Promise<{ runId: string; output: string }> {
  const child = spawn(process.execPath, [
    'bin/dogbreed.mjs',
    'run',
    '--source',
    tar,
    '--workspace',
    workspace,
    '--shard-size',
    '8',
  ]);
  let output = '';
  child.stdout.on('data', (d) => {
    output += String(d);
    if (when.test(output) && !child.killed) child.kill('SIGKILL');
  });
  child.stderr.on('data', (d) => {
    output += String(d);
  });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_c, s) => resolve(s)),
  );
  expect(signal, output).toBe('SIGKILL');
  const runId = /^run (\S+): /m.exec(output)?.[1];
  expect(runId, output).toBeDefined();
  return { runId: runId!, output };
}

async function resume(workspace: string, runId: string) {
  const r = await cli(['resume', runId, '--workspace', workspace, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const summary = JSON.parse(r.stdout) as RunSummary;
  const metrics = await withWorkspaceStore(workspace, (store) =>
    store.getJson<MetricsReport>(keys.metrics(runId)),
  );
  return { summary, metrics, progress: r.stderr };
}

describe('dogbreed resume after SIGKILL', () => {
  it('killed in Preprocess: listed as interrupted, resumed from Preprocess, finished shards not redone', async () => {
    const ws = join(dir, 'ws-pre');
    const { runId } = await runKilled(ws, /\[1\/\d+\] train shard \d+ \(8 images\) done/);

    const runs = await cli(['runs', '--workspace', ws]);
    expect(runs.stdout).toMatch(new RegExp(`${runId}\\s+\\S+\\s+interrupted`));
    expect(runs.stdout).toContain(`dogbreed resume ${runId}`);

    const { summary, metrics, progress } = await resume(ws, runId);
    expect(summary.status).toBe('SUCCEEDED');
    expect(summary.runId).toBe(runId);
    expect(summary.resumed?.fromState).toBe('Preprocess');
    // FetchDataset, VerifyDataset, BuildManifests and at least the shard that was reported done.
    expect(summary.resumed?.reusedTasks).toBeGreaterThanOrEqual(4);
    expect(summary.outputs?.shards.images).toBe(240);
    expect(metrics.resumed?.[0]).toMatchObject({ fromState: 'Preprocess', how: 'local' });
    expect(metrics.counts.test).toBeGreaterThan(0);
    expect(metrics.accuracy).toBeGreaterThan(0.8);
    // Only the shards without a recorded result ran again (each one that runs logs a line).
    expect(progress.match(/· (train|val|test) shard \d+: (\d+ images|reused)/g)?.length ?? 0).toBeLessThan(
      summary.outputs!.shards.count,
    );
    expect((await cli(['runs', '--workspace', ws])).stdout).toMatch(
      new RegExp(`${runId}\\s+\\S+\\s+succeeded`),
    );
  });

  it('killed in TrainModel: resumed from TrainModel with the features computed before the kill reused', async () => {
    const ws = join(dir, 'ws-train');
    const { runId } = await runKilled(ws, /epoch 1\/\d+ train loss/);
    const { summary, metrics } = await resume(ws, runId);
    expect(summary.status).toBe('SUCCEEDED');
    expect(summary.resumed?.fromState).toBe('TrainModel');
    expect(metrics.resumed?.[0]?.fromState).toBe('TrainModel');
    // Every shard's features were computed before the first epoch, so none is computed again.
    expect(metrics.cache?.TrainModel?.computed).toBe(0);
    expect(metrics.cache?.TrainModel?.reused).toBeGreaterThan(0);
    expect(metrics.accuracy).toBeGreaterThan(0.8);
  });

  it('refuses to resume a run that succeeded or that does not exist, saying what to do', async () => {
    const ws = join(dir, 'ws-train');
    const missing = await cli(['resume', 'no-such-run', '--workspace', ws]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('run no-such-run has no execution record');
  });
});
