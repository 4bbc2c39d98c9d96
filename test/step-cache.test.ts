import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withWorkspaceStore } from '../src/cli/workspace.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { type LocalRunResult, runLocalPipeline } from '../src/local/pipeline.ts';
import type { MetricsReport } from '../src/metrics/types.ts';
import { encodeModel, loadModel } from '../src/model/onnx-io.ts';
import { IMAGENET_PREPROCESS } from '../src/model/types.ts';
import { shardCacheKey } from '../src/stages/preprocess-shard.ts';
import { keys } from '../src/storage/layout.ts';
import { type FeatureKeyParts, featureCacheKey } from '../src/training/feature-cache.ts';
import type { PipelineConfig } from '../src/types.ts';

// The step cache end to end on the synthetic sample: what a rerun reuses, what a changed input
// recomputes, and that a run from the cache trains the very same model.

let workspace: string;
const base: PipelineConfig = { source: '', seed: 3, shardSize: 10, resizeShorter: 64 };
const runs = new Map<string, LocalRunResult>();

async function run(runId: string, config: Partial<PipelineConfig> = {}): Promise<MetricsReport> {
  const r = await runLocalPipeline({ workspace, config: { ...base, ...config }, runId });
  expect(r.status, `${r.error}: ${r.cause}`).toBe('SUCCEEDED');
  runs.set(runId, r);
  return r.metrics!;
}

const use = (m: MetricsReport, state: 'VerifyDataset' | 'Preprocess' | 'TrainModel') => {
  const c = m.cache![state]!;
  return { computed: c.computed, reused: c.reused };
};

/** The model's bytes with its provenance's run id blanked: all else must be identical. */
async function modelBytesBesidesRunId(runId: string): Promise<Buffer> {
  const bytes = await withWorkspaceStore(workspace, (store) => store.getBytes(keys.model(runId)));
  const model = loadModel(bytes, runId);
  model.metadataProps = (model.metadataProps ?? []).map((p) =>
    p.key === 'provenance'
      ? { key: p.key, value: JSON.stringify({ ...JSON.parse(p.value!), runId: '' }) }
      : p,
  );
  return Buffer.from(encodeModel(model));
}

beforeAll(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'dogbreed-cache-'));
  base.source = join(workspace, 'sample.tar');
  await writeSampleTarball(base.source, { classes: 4, perClass: 12, seed: 7 });
});
afterAll(() => rm(workspace, { recursive: true, force: true }));

describe('step cache', () => {
  let shards: number;
  let featureShards: number;

  it('a first run computes every shard and every shard’s features, and fills the cache', async () => {
    const m = await run('fill');
    shards = m.cache!.Preprocess!.shards.length;
    featureShards = m.cache!.TrainModel!.shards.length;
    expect(shards).toBeGreaterThan(2);
    expect(use(m, 'VerifyDataset')).toEqual({ computed: 1, reused: 0 });
    expect(use(m, 'Preprocess')).toEqual({ computed: shards, reused: 0 });
    expect(use(m, 'TrainModel')).toEqual({ computed: featureShards, reused: 0 });
    const cached = await withWorkspaceStore(workspace, async (store) => {
      const out: string[] = [];
      for await (const o of store.list(keys.cachePrefix)) out.push(o.key);
      return out;
    });
    expect(cached.filter((k) => k.startsWith('cache/shards/'))).toHaveLength(shards);
    expect(cached.filter((k) => k.startsWith('cache/features/'))).toHaveLength(featureShards);
  });

  it('a rerun with only the learning rate changed reuses the verification, every shard and all features', async () => {
    const m = await run('lr', { training: { learningRate: 0.01 } });
    expect(use(m, 'VerifyDataset')).toEqual({ computed: 0, reused: 1 });
    expect(use(m, 'Preprocess')).toEqual({ computed: 0, reused: shards });
    expect(use(m, 'TrainModel')).toEqual({ computed: 0, reused: featureShards });
  });

  it('a run from the cache gives the same model bytes as the run that filled it', async () => {
    const m = await run('same');
    expect(use(m, 'TrainModel').reused).toBe(featureShards);
    expect((await modelBytesBesidesRunId('same')).equals(await modelBytesBesidesRunId('fill'))).toBe(true);
    expect(m.accuracy).toBe(runs.get('fill')!.metrics!.accuracy);
  });

  it('other --views: shards reused, features computed', async () => {
    const m = await run('views', { training: { views: 1 } });
    expect(use(m, 'Preprocess')).toEqual({ computed: 0, reused: shards });
    // Val shards have no augmented views: only the train shards' features depend on --views.
    expect(use(m, 'TrainModel').computed).toBeGreaterThan(0);
    expect(use(m, 'TrainModel').computed).toBeLessThan(featureShards);
  });

  it('other --resize: shards and features computed', async () => {
    const m = await run('resize', { resizeShorter: 72 });
    expect(use(m, 'Preprocess')).toEqual({ computed: shards, reused: 0 });
    expect(use(m, 'TrainModel')).toEqual({ computed: featureShards, reused: 0 });
  });

  it('another seed (another split): shards and features computed', async () => {
    const m = await run('seed', { seed: 4 });
    expect(use(m, 'Preprocess').reused).toBe(0);
    expect(use(m, 'TrainModel').reused).toBe(0);
  });

  it('--no-cache recomputes everything, and gives the same model', async () => {
    const m = await run('nocache', { cache: false, training: { cache: false } });
    expect(use(m, 'VerifyDataset')).toEqual({ computed: 1, reused: 0 });
    expect(use(m, 'Preprocess')).toEqual({ computed: shards, reused: 0 });
    expect(use(m, 'TrainModel')).toEqual({ computed: featureShards, reused: 0 });
    expect((await modelBytesBesidesRunId('nocache')).equals(await modelBytesBesidesRunId('fill'))).toBe(true);
  });
});

describe('cache keys', () => {
  it('a shard’s key changes with the dataset, its member list and the resize', () => {
    const k = shardCacheKey('a'.repeat(64), 'list', 256);
    expect(k).toMatch(/^cache\/shards\/[0-9a-f]{64}\.tar$/);
    expect(shardCacheKey('a'.repeat(64), 'list', 256)).toBe(k);
    expect(shardCacheKey('b'.repeat(64), 'list', 256)).not.toBe(k);
    expect(shardCacheKey('a'.repeat(64), 'list2', 256)).not.toBe(k);
    expect(shardCacheKey('a'.repeat(64), 'list', 224)).not.toBe(k);
  });

  it('features’ key changes with the shard, the backbone, the feature tensor, the preprocessing, views, seed', () => {
    const parts: FeatureKeyParts = {
      shardSha256: 's'.repeat(64),
      backboneSha256: 'b'.repeat(64),
      featureTensor: 'pooled',
      spec: IMAGENET_PREPROCESS,
      views: 2,
      seed: 1,
      batchSize: 32,
    };
    const k = featureCacheKey(parts);
    expect(k).toMatch(/^cache\/features\/[0-9a-f]{64}\.f32$/);
    expect(featureCacheKey({ ...parts })).toBe(k);
    const changed: Partial<FeatureKeyParts>[] = [
      { shardSha256: 't'.repeat(64) },
      { backboneSha256: 'c'.repeat(64) },
      { featureTensor: 'other' },
      { spec: { ...parts.spec, cropSize: 192 } },
      { spec: { ...parts.spec, mean: [0.5, 0.5, 0.5] } },
      { views: 3 },
      { seed: 2 },
    ];
    for (const c of changed) expect(featureCacheKey({ ...parts, ...c }), JSON.stringify(c)).not.toBe(k);
  });
});
