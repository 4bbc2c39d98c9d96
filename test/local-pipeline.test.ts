import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Progress } from '../src/cli/progress.ts';
import { runSummary } from '../src/cli/summary.ts';
import { withWorkspaceStore } from '../src/cli/workspace.ts';
import { IndexRowSchema, ManifestRowSchema } from '../src/dataset/rows.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { readTar } from '../src/dataset/tar-reader.ts';
import { packTar } from '../src/dataset/tar-writer.ts';
import { parseValidateEvent, parseWriteReportEvent } from '../src/events.ts';
import { loadLocalDefinition } from '../src/local/definition.ts';
import { localHandlers } from '../src/local/handlers.ts';
import { LOCAL_BUCKET, runLocalPipeline, useLocalS3 } from '../src/local/pipeline.ts';
import { startLocalS3 } from '../src/local/s3-server.ts';
import { runStateMachine } from '../src/local/step-functions.ts';
import type { MetricsReport } from '../src/metrics/types.ts';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import { readRun } from '../src/queries/runs.ts';
import { validateShard } from '../src/stages/validate-shard.ts';
import { writeReport } from '../src/stages/write-report.ts';
import type { ObjectStore } from '../src/storage/object-store.ts';
import { type DeviceRecord, listGpuDevices } from '../src/training/devices.ts';
import type { FailureReport, Inventory, ManifestRow, ShardResult, ShardSample } from '../src/types.ts';
import { parseJsonl } from '../src/util/jsonl.ts';
import { testAccuracy } from './helpers/evaluate.ts';

// The deployed ASL file run by the local engine against the real local S3, end to end (dataset
// to report and promotion), and its failure paths.

let workspace: string;
let sampleTar: string;
/** run-a: the first full run on the synthetic sample, shared by the tests that inspect it. */
let first: Awaited<ReturnType<typeof runLocalPipeline>>;

/** Opens the workspace's S3 data with a fresh server, to inspect what a run left. */
const inspect = <T>(fn: (store: ObjectStore) => Promise<T>) => withWorkspaceStore(workspace, fn);

async function shardEntries(store: ObjectStore, key: string) {
  const entries: { name: string; data: Buffer }[] = [];
  for await (const e of readTar(await store.getStream(key)))
    entries.push({ name: e.name, data: Buffer.from(e.data!) });
  return entries;
}

beforeAll(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'dogbreed-ws-'));
  sampleTar = join(workspace, 'sample.tar');
  await writeSampleTarball(sampleTar, { classes: 4, perClass: 12, seed: 7 });
});
afterAll(() => rm(workspace, { recursive: true, force: true }));

describe('local pipeline on the synthetic sample', () => {
  const config = { source: '', seed: 3, shardSize: 10, resizeShorter: 64 };

  beforeAll(async () => {
    config.source = sampleTar;
    first = await runLocalPipeline({ workspace, config, runId: 'run-a' });
  });

  it('succeeds through every state, within the payload limit', () => {
    expect(first.status, `${first.error}: ${first.cause}`).toBe('SUCCEEDED');
    const states = first.timings.map((t) => t.state);
    expect(states).toEqual(
      expect.arrayContaining([
        'FetchDataset',
        'VerifyDataset',
        'BuildManifests',
        'Preprocess',
        'PreprocessShard',
      ]),
    );
    for (const t of first.timings) expect(t.status).toBe('succeeded');
    expect(first.maxPayloadBytes).toBeGreaterThan(0);
    expect(first.maxPayloadBytes).toBeLessThan(256 * 1024);
  });

  it('writes the index and inventory, and stratified manifests covering every image once', async () => {
    await inspect(async (store) => {
      const out = first.output as {
        dataset: { datasetId: string };
        manifests: { counts: Record<string, number> };
      };
      const inventory = await store.getJson<Inventory>(`datasets/${out.dataset.datasetId}/inventory.json`);
      expect(inventory).toMatchObject({ images: 48, classes: 4, invalid: [] });
      const index = parseJsonl(await store.getText(inventory.indexKey), 'index', IndexRowSchema);
      const manifests: Record<string, ManifestRow[]> = {};
      for (const split of ['train', 'val', 'test']) {
        manifests[split] = parseJsonl(
          await store.getText(`runs/run-a/manifests/${split}.jsonl`),
          split,
          ManifestRowSchema,
        );
        // every class in every split
        expect(new Set(manifests[split]!.map((r) => r.class)).size).toBe(4);
      }
      const ids = Object.values(manifests)
        .flat()
        .map((r) => r.id);
      expect(ids.sort()).toEqual(index.map((r) => r.id).sort());
      expect(out.manifests.counts).toEqual({
        train: manifests.train!.length,
        val: manifests.val!.length,
        test: manifests.test!.length,
      });
    });
  });

  it('writes one WebDataset shard per planned shard: <id>.jpg + <id>.json, resized, every image exactly once', async () => {
    const shards = (first.output as { shards: ShardResult[] }).shards;
    const planned = (first.output as { manifests: { shards: unknown[] } }).manifests.shards;
    expect(shards).toHaveLength(planned.length);
    await inspect(async (store) => {
      const seen = new Map<string, string>();
      for (const shard of shards) {
        const entries = await shardEntries(store, shard.key);
        expect(entries).toHaveLength(shard.images * 2);
        for (let i = 0; i < entries.length; i += 2) {
          const jpg = entries[i]!;
          const json = entries[i + 1]!;
          const id = jpg.name.replace(/\.jpg$/, '');
          expect(json.name).toBe(`${id}.json`);
          const sample = JSON.parse(json.data.toString()) as ShardSample;
          expect(sample.id).toBe(id);
          const meta = await sharp(jpg.data).metadata();
          expect(Math.min(meta.width!, meta.height!)).toBe(64);
          expect([meta.width, meta.height]).toEqual([sample.width, sample.height]);
          expect(meta.channels).toBe(3);
          expect(seen.has(id)).toBe(false);
          seen.set(id, shard.split);
        }
      }
      expect(seen.size).toBe(48);
    });
  });

  it('trains a head on the tiny backbone that learns the synthetic classes, and writes one ONNX model', async () => {
    await inspect(async (store) => {
      const training = await store.getJson<{
        backbone: { source: string; featureDim: number };
        init: string;
        bestEpoch: number;
        valAccuracy: number;
        epochs: { epoch: number; valAccuracy: number }[];
        backend: string;
        devices: DeviceRecord;
      }>('runs/run-a/model/training.json');
      expect(training.backbone.source).toBe('tiny');
      expect(training.init).toBe('random');
      expect(training.backend).toBe('wasm');
      // What each library ran on, observed in the training process (no GPU build here).
      expect(training.devices).toMatchObject({
        gpuPresent: listGpuDevices().length > 0,
        tensorflow: { backend: 'wasm', gpu: false },
        onnxruntime: { provider: 'cpu', gpu: false },
      });
      expect(training.valAccuracy).toBeGreaterThanOrEqual(0.9);
      expect(training.epochs.find((e) => e.epoch === training.bestEpoch)?.valAccuracy).toBe(
        training.valAccuracy,
      );
      const labels = await store.getJson<{ classes: { class: string }[] }>('runs/run-a/model/labels.json');
      expect(labels.classes).toHaveLength(4);
      // The merged model, on the run's own held-out test split, with only its own metadata.
      const { accuracy, images } = await testAccuracy(store, 'run-a');
      expect(images).toBeGreaterThan(0);
      expect(accuracy).toBeGreaterThanOrEqual(0.9);
    });
  });

  it('a second run reuses the stored dataset and gives byte-identical manifests and shards', async () => {
    const second = await runLocalPipeline({ workspace, config, runId: 'run-b' });
    expect(second.status).toBe('SUCCEEDED');
    expect((second.output as { dataset: { skipped: boolean } }).dataset.skipped).toBe(true);
    const a = (first.output as { shards: ShardResult[] }).shards.map((s) => s.sha256);
    const b = (second.output as { shards: ShardResult[] }).shards.map((s) => s.sha256);
    expect(b).toEqual(a);
    await inspect(async (store) => {
      for (const split of ['train', 'val', 'test']) {
        expect(await store.getText(`runs/run-b/manifests/${split}.jsonl`)).toBe(
          await store.getText(`runs/run-a/manifests/${split}.jsonl`),
        );
      }
    });
  });
});

describe('validation, report and promotion on the synthetic sample', () => {
  it('validates the test split, writes metrics.json and report.html, passes the gate and promotes run-a', async () => {
    await inspect(async (store) => {
      const m = await store.getJson<MetricsReport>('reports/run-a/metrics.json');
      expect(m.schemaVersion).toBe(1);
      expect(m.counts.test).toBe(
        (first.output as { manifests: { counts: { test: number } } }).manifests.counts.test,
      );
      expect(m.perClass).toHaveLength(4);
      expect(m.confusion.flat().reduce((a, b) => a + b, 0)).toBe(m.counts.test);
      expect(m.accuracy).toBeGreaterThanOrEqual(0.9);
      // the same figure the test helper computes straight from model.onnx
      expect(m.accuracy).toBeCloseTo((await testAccuracy(store, 'run-a')).accuracy, 10);
      expect(m.gate.passed).toBe(true);
      expect(m.promotion).toMatchObject({ promoted: true });
      expect(Object.keys(m.timings)).toEqual(
        expect.arrayContaining([
          'FetchDataset',
          'VerifyDataset',
          'BuildManifests',
          'Preprocess',
          'TrainModel',
          'Validate',
        ]),
      );
      const champion = await store.getJson<{ runId: string; modelKey: string }>('models/current.json');
      expect(champion).toMatchObject({ runId: 'run-a', modelKey: 'runs/run-a/model/model.onnx' });
      const html = await store.getText('reports/run-a/report.html');
      expect(html).toContain('<html');
      expect(html).not.toMatch(/(src|href)=["']https?:/);
    });
  });

  it('a run that is no better (run-b, same data and seed) does not replace the champion, and says why', async () => {
    await inspect(async (store) => {
      const m = await store.getJson<MetricsReport>('reports/run-b/metrics.json');
      expect(m.promotion.promoted).toBe(false);
      expect(m.promotion.reason).toMatch(/does not beat champion run-a/);
      expect((await store.getJson<{ runId: string }>('models/current.json')).runId).toBe('run-a');
    });
  });

  it('a worse run whose gate fails is not promoted, and the report lists the failed thresholds', async () => {
    const r = await runLocalPipeline({
      workspace,
      config: {
        source: sampleTar,
        seed: 3,
        shardSize: 10,
        resizeShorter: 64,
        training: { epochs: 1, learningRate: 1e-7, views: 0 },
      },
      runId: 'run-worse',
    });
    expect(r.status, `${r.error}: ${r.cause}`).toBe('SUCCEEDED');
    expect(r.metrics?.gate.passed).toBe(false);
    expect(r.metrics?.promotion.reason).toMatch(/^not promoted: the gate failed \(.*✗/);
    await inspect(async (store) => {
      expect((await store.getJson<{ runId: string }>('models/current.json')).runId).toBe('run-a');
    });
  });

  it('WriteReport fails naming a missing predictions shard, and writes no metrics.json', async () => {
    await inspect(async (store) => {
      const event = parseWriteReportEvent({
        runId: 'run-a',
        config: { source: sampleTar },
        dataset: (first.output as { dataset: unknown }).dataset,
        counts: { train: 1, val: 1, test: 1 },
        predictions: [{ predictionsKey: 'runs/run-a/predictions/shard-00099.json', images: 3, correct: 1 }],
      });
      await expect(writeReport(store, { ...event, runId: 'run-a' })).rejects.toThrow(
        /predictions shard runs\/run-a\/predictions\/shard-00099\.json cannot be read/,
      );
    });
  });

  it('Validate refuses a model whose labels differ from the run’s classes', async () => {
    await inspect(async (store) => {
      await store.copy('runs/run-a/model/model.onnx', 'runs/run-mismatch/model/model.onnx', {
        metadata: (await store.head('runs/run-a/model/model.onnx'))!.metadata,
      });
      await store.putJson('runs/run-mismatch/manifests/classes.json', { classes: ['a', 'b', 'c', 'd'] });
      const task = (first.output as { manifests: { validation: unknown[] } }).manifests.validation[0];
      await expect(
        validateShard(store, parseValidateEvent({ runId: 'run-mismatch', config: { source: 'x' }, task })),
      ).rejects.toThrow(
        /was trained on 4 classes that differ from this run's 4 .*the model does not belong to this run/,
      );
    });
  });
});

describe('local pipeline failures', () => {
  it('a truncated tarball fails VerifyDataset: failure.json names the state and the cause, no inventory is written', async () => {
    const whole = await readFile(sampleTar);
    const cut = join(workspace, 'truncated.tar');
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length / 2) + 100));
    const lines: string[] = [];
    const progress = new Progress(
      (l) => lines.push(l),
      () => [],
      () => '',
    );
    const r = await runLocalPipeline({
      workspace,
      config: { source: cut },
      runId: 'run-truncated',
      onEvent: progress.onEvent,
    });
    expect(r.status).toBe('FAILED');
    // The failure is shown and listed as failed, never as a success.
    expect(lines.some((l) => /^✖ VerifyDataset failed \d/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('✔ VerifyDataset'))).toBe(false);
    expect(runSummary(r).timings.find((t) => t.state === 'VerifyDataset')?.status).toBe('failed');
    expect(runSummary(r).timings.find((t) => t.state === 'FetchDataset')?.status).toBe('succeeded');
    expect(r.failure).toMatchObject({ runId: 'run-truncated', state: 'VerifyDataset', error: 'DataError' });
    expect(r.failure?.cause).toMatch(/truncated/);
    await inspect(async (store) => {
      const report = await store.getJson<FailureReport>('reports/run-truncated/failure.json');
      expect(report.state).toBe('VerifyDataset');
      const keys: string[] = [];
      for await (const o of store.list('datasets/')) keys.push(o.key);
      const datasetId = keys.find(
        (k) => k.endsWith('images.tar') && !keys.includes(k.replace('images.tar', 'index.jsonl')),
      );
      expect(datasetId).toBeDefined();
      expect(keys).not.toContain(datasetId!.replace('images.tar', 'inventory.json'));
      expect(await store.head('runs/run-truncated/manifests/train.jsonl')).toBeUndefined();
    });
  });

  it('an image whose header claims too many pixels fails Preprocess, naming the image, and writes no shard for it', async () => {
    const small = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#884422' } })
      .jpeg()
      .toBuffer();
    // Patch the SOF0 dimensions to 12000×12000: the header parses, the pixel limit refuses it.
    const bomb = Buffer.from(small);
    const sof = bomb.indexOf(Buffer.from([0xff, 0xc0]));
    bomb.writeUInt16BE(12000, sof + 5);
    bomb.writeUInt16BE(12000, sof + 7);
    const files = [];
    for (const cls of ['a', 'b']) {
      for (let i = 0; i < 4; i++) files.push({ name: `${cls}/${cls}${i}.jpg`, data: small });
    }
    files.push({ name: 'a/bomb.jpg', data: bomb });
    const tarPath = join(workspace, 'bomb.tar');
    await writeFile(tarPath, packTar(files));
    const r = await runLocalPipeline({
      workspace,
      config: { source: tarPath, shardSize: 2 },
      runId: 'run-bomb',
    });
    expect(r.status).toBe('FAILED');
    expect(r.failure?.state).toBe('Preprocess');
    expect(r.failure?.cause).toContain('a/bomb.jpg');
    expect(r.failure?.cause).toMatch(/pixel/i);
    await inspect(async (store) => {
      const lists: string[] = [];
      for await (const o of store.list('runs/run-bomb/manifests/shards/')) lists.push(o.key);
      const withBomb = [];
      for (const key of lists) if ((await store.getText(key)).includes('a/bomb.jpg')) withBomb.push(key);
      expect(withBomb).toHaveLength(1);
      const shardKey = withBomb[0]!.replace('/manifests/shards/', '/shards/').replace(/\.jsonl$/, '.tar');
      expect(await store.head(shardKey)).toBeUndefined();
    });
  });

  it.each([
    [
      'an unreachable backbone',
      () => join(workspace, 'no-such-backbone.onnx'),
      /backbone .*no-such-backbone\.onnx cannot be read: source .* does not exist/,
    ],
    ['a backbone that is not an ONNX model', () => sampleTar, /is not an ONNX model/],
  ])(
    '%s fails TrainModel with a message that says what to fix, and leaves no model.onnx',
    async (_what, backbone, message) => {
      const runId = `run-backbone-${_what.length}`;
      const r = await runLocalPipeline({
        workspace,
        config: { source: sampleTar, shardSize: 10, training: { backbone: backbone() } },
        runId,
      });
      expect(r.status).toBe('FAILED');
      expect(r.failure?.state).toBe('TrainModel');
      expect(r.failure?.error).toBe('States.TaskFailed');
      expect(r.failure?.cause).toMatch(message);
      await inspect(async (store) => {
        expect(await store.head(`runs/${runId}/model/model.onnx`)).toBeUndefined();
        expect(await store.head(`runs/${runId}/shards/train/shard-00000.tar`)).toBeDefined();
      });
    },
  );

  it('a failure fixed and resumed reruns the state that failed, reuses the rest, and leaves no stale failure.json', async () => {
    // TrainModel fails: its backbone file is not there yet (a fault outside the pipeline).
    const backbone = join(workspace, 'late-backbone.onnx');
    const training = { backbone, preprocess: { resizeShorter: 73, cropSize: 64 } };
    const runId = 'run-fixed';
    const failed = await runLocalPipeline({
      workspace,
      config: { source: sampleTar, shardSize: 10, training },
      runId,
    });
    expect(failed.status).toBe('FAILED');
    // The execution failed at the Task itself (nothing caught it), and ReportFailure said so.
    expect(failed.error).toBe('States.TaskFailed');
    expect(failed.failure).toMatchObject({ runId, state: 'TrainModel', error: 'States.TaskFailed' });
    expect(failed.failure?.cause).toMatch(/late-backbone\.onnx cannot be read/);
    expect((await inspect((store) => readRun(store, runId))).status).toBe('failed');

    await writeFile(backbone, buildTinyBackbone({ inputSize: 64 }));
    const resumed = await runLocalPipeline({ workspace, config: { source: 'ignored' }, runId, resume: true });
    expect(resumed.status, `${resumed.error}: ${resumed.cause}`).toBe('SUCCEEDED');
    expect(resumed.resumed?.fromState).toBe('TrainModel');
    // FetchDataset, VerifyDataset, BuildManifests and every PreprocessShard came from the first attempt.
    const shards = resumed.metrics!.cache?.Preprocess;
    expect(resumed.resumed?.reusedTasks).toBe(3 + (shards?.computed ?? 0) + (shards?.reused ?? 0));
    expect(resumed.failure).toBeUndefined();
    expect(resumed.metrics?.resumed).toMatchObject([{ fromState: 'TrainModel', how: 'local' }]);
    await inspect(async (store) => {
      expect(await store.head(`reports/${runId}/failure.json`)).toBeUndefined();
      expect((await readRun(store, runId)).status).toBe('succeeded');
    });
  });

  it('a stopped run is reported as EventBridge reports an ABORTED execution: where it stopped', async () => {
    const stop = new AbortController();
    const r = await runLocalPipeline({
      workspace,
      config: { source: sampleTar, shardSize: 10 },
      runId: 'run-stopped',
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'StateEntered' && e.state.name === 'BuildManifests') stop.abort();
      },
    });
    expect(r.status).toBe('ABORTED');
    expect(r.failure).toMatchObject({ runId: 'run-stopped', state: 'BuildManifests', error: 'Aborted' });
  });

  it('refuses a state output over the 256 KiB payload limit', async () => {
    const s3 = await startLocalS3({ directory: join(workspace, 's3-limit'), bucket: LOCAL_BUCKET });
    const restore = useLocalS3(s3.endpoint, s3.bucket);
    try {
      const r = await runStateMachine({
        definition: await loadLocalDefinition(),
        executionName: 'run-oversize',
        input: { config: { source: sampleTar } },
        handlers: { ...localHandlers, FetchDataset: async () => ({ blob: 'x'.repeat(300 * 1024) }) },
      });
      expect(r.status).toBe('FAILED');
      expect(r.error).toBe('States.DataLimitExceeded');
      expect(r.cause).toMatch(/FetchDataset output is \d+ bytes, over Step Functions' 256 KiB payload limit/);
    } finally {
      restore();
      await s3.close();
    }
  });
});
