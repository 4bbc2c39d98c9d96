import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withWorkspaceStore } from '../src/cli/workspace.ts';
import { ManifestRowSchema } from '../src/dataset/rows.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { runLocalPipeline } from '../src/local/pipeline.ts';
import type { MetricsReport } from '../src/metrics/types.ts';
import type { RunSummaryRow } from '../src/queries/runs.ts';
import { parseJsonl } from '../src/util/jsonl.ts';
import { cli } from './helpers/cli.ts';

// `dogbreed runs | report | compare | evaluate` against a workspace with real runs in it.

describe('reading runs', () => {
  let workspace: string;
  let tar: string;
  const ws = () => ['--workspace', workspace];

  beforeAll(async () => {
    workspace = await mkdtemp(join(tmpdir(), 'dogbreed-reports-'));
    tar = join(workspace, 'sample.tar');
    await writeSampleTarball(tar, { classes: 4, perClass: 15, seed: 2 });
    const config = { source: tar, shardSize: 20, resizeShorter: 64 };
    for (const [runId, seed] of [
      ['20261101-100000-aaaa', 1],
      ['20261102-100000-bbbb', 2],
    ] as const) {
      const r = await runLocalPipeline({ workspace, config: { ...config, seed }, runId });
      expect(r.status, `${r.error}: ${r.cause}`).toBe('SUCCEEDED');
    }
    await runLocalPipeline({
      workspace,
      config: { source: join(workspace, 'missing.tar') },
      runId: '20261103-100000-cccc',
    });
  }, 300_000);
  afterAll(() => rm(workspace, { recursive: true, force: true }));

  it('runs lists every run newest first, with status, figures and the champion', async () => {
    const r = await cli(['runs', '--json', ...ws()]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as RunSummaryRow[];
    expect(rows.map((x) => [x.runId, x.status])).toEqual([
      ['20261103-100000-cccc', 'failed'],
      ['20261102-100000-bbbb', 'succeeded'],
      ['20261101-100000-aaaa', 'succeeded'],
    ]);
    expect(rows[2]).toMatchObject({ champion: true, startedAt: '2026-11-01T10:00:00Z', gatePassed: true });
    expect(rows[2]!.macroF1).toBeGreaterThan(0.6);
    const text = await cli(['runs', ...ws()]);
    expect(text.stdout).toMatch(/★ 20261101-100000-aaaa/);
  });

  it('report prints a summary, or the metrics JSON, or writes report.html', async () => {
    const summary = await cli(['report', '20261101-100000-aaaa', ...ws()]);
    expect(summary.code).toBe(0);
    expect(summary.stdout).toMatch(/^accuracy +\d\.\d{3} +top-5/m);
    expect(summary.stdout).toMatch(/^gate +passed: accuracy/m);
    const json = JSON.parse(
      (await cli(['report', '20261101-100000-aaaa', '--json', ...ws()])).stdout,
    ) as MetricsReport;
    expect(json.runId).toBe('20261101-100000-aaaa');
    const file = join(workspace, 'out.html');
    expect((await cli(['report', 'latest', '--html', file, ...ws()])).code).toBe(1); // latest is the failed run
    expect((await cli(['report', '20261101-100000-aaaa', '--html', file, ...ws()])).code).toBe(0);
    expect(await readFile(file, 'utf8')).toMatch(/^<!doctype html>/i);
  });

  it('report on a failed run shows its failure.json; on an unknown run says so', async () => {
    const failed = await cli(['report', '20261103-100000-cccc', ...ws()]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/failed in FetchDataset: InputError: source .*missing\.tar does not exist/);
    const unknown = await cli(['report', 'nope', ...ws()]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      'no run nope in s3://dogbreed-local: `dogbreed runs` lists the runs there',
    );
  });

  it('compare shows both runs side by side with deltas and the classes that changed most', async () => {
    const r = await cli(['compare', '20261101-100000-aaaa', '20261102-100000-bbbb', '--json', ...ws()]);
    expect(r.code).toBe(0);
    const c = JSON.parse(r.stdout) as {
      metrics: { name: string; a: number; b: number; delta: number }[];
      classesChangedMost: unknown[];
    };
    const acc = c.metrics.find((m) => m.name === 'accuracy')!;
    expect(acc.delta).toBeCloseTo(acc.b - acc.a, 12);
    expect(c.classesChangedMost.length).toBeGreaterThan(0);
    expect((await cli(['compare', '20261101-100000-aaaa', ...ws()])).code).toBe(2);
  });

  it('evaluate on the test images as a directory gives exactly the metrics Validate computed', async () => {
    const runId = '20261101-100000-aaaa';
    const dir = join(workspace, 'test-images');
    const whole = await readFile(tar);
    await withWorkspaceStore(workspace, async (store) => {
      for (const row of parseJsonl(
        await store.getText(`runs/${runId}/manifests/test.jsonl`),
        'test',
        ManifestRowSchema,
      )) {
        const file = join(dir, row.class, row.member.split('/').at(-1)!);
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, whole.subarray(row.offset, row.offset + row.size));
      }
    });
    const r = await cli(['evaluate', '--model', runId, dir, '--json', ...ws()]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { images: number; metrics: MetricsReport };
    const stored = JSON.parse((await cli(['report', runId, '--json', ...ws()])).stdout) as MetricsReport;
    expect(result.images).toBe(stored.counts.test);
    expect(result.metrics.confusion).toEqual(stored.confusion);
    expect(result.metrics.accuracy).toBe(stored.accuracy);
    expect(result.metrics.macro).toEqual(stored.macro);
    expect(result.metrics.logLoss).toBeCloseTo(stored.logLoss, 6);
    // and the champion resolves to the same model
    const champ = await cli(['evaluate', '--model', 'champion', dir, '--json', ...ws()]);
    expect((JSON.parse(champ.stdout) as { metrics: MetricsReport }).metrics.accuracy).toBe(stored.accuracy);
  });

  it('evaluate names the folders the model does not know', async () => {
    const dir = join(workspace, 'strangers');
    await mkdir(join(dir, 'cats'), { recursive: true });
    await writeFile(join(dir, 'cats', 'x.jpg'), await readFile(tar).then((b) => b.subarray(0, 10)));
    const r = await cli(['evaluate', '--model', 'champion', dir, ...ws()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cats is not a class the model knows/);
  });
});
