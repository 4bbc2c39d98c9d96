import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packTar } from '../src/dataset/tar-writer.ts';
import { OnnxBatchModel } from '../src/model/batch-model.ts';
import { cutAtFeature, findFeatureCutAsync } from '../src/model/onnx-graph.ts';
import { loadModel } from '../src/model/onnx-io.ts';
import { loadBackbone } from '../src/training/backbone-source.ts';
import {
  type FeatureOptions,
  type ShardFeatureRecord,
  shardFeatures,
  splitFeatures,
} from '../src/training/features.ts';
import { TRAINING_DEFAULTS } from '../src/training/training-config.ts';
import type { ShardSample } from '../src/types.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// A split's features are computed two shards at a time, and still come out as if shard by shard:
// concatenated in shard order, each shard's rows what it gives alone.

let t: TestS3;
let extractor: OnnxBatchModel;
let opts: FeatureOptions;

/** A shard as Preprocess writes it: `<id>.jpg` then `<id>.json`, `n` images of distinct colours. */
async function putShard(key: string, n: number, label: number, sha256?: string): Promise<void> {
  const files = [];
  for (let i = 0; i < n; i++) {
    const id = `${key.replace(/\W/g, '_')}_${i}`;
    const jpeg = await sharp({
      create: {
        width: 96,
        height: 80,
        channels: 3,
        background: { r: (i * 37) % 256, g: label * 60, b: 255 - i },
      },
    })
      .jpeg()
      .toBuffer();
    const sample: ShardSample = {
      id,
      label,
      class: `class-${label}`,
      width: 96,
      height: 80,
      sourceWidth: 96,
      sourceHeight: 80,
      member: `class-${label}/${id}.jpg`,
    };
    files.push(
      { name: `${id}.jpg`, data: jpeg },
      { name: `${id}.json`, data: Buffer.from(JSON.stringify(sample)) },
    );
  }
  // Preprocess records each shard's sha256, which names its cached features.
  await t.store.put(key, packTar(files), sha256 ? { metadata: { sha256 } } : undefined);
}

beforeAll(async () => {
  t = await startTestS3();
  const backbone = await loadBackbone('tiny', TRAINING_DEFAULTS, t.store);
  const model = loadModel(backbone.bytes, backbone.source);
  const cut = await findFeatureCutAsync(model, { source: backbone.source });
  extractor = await OnnxBatchModel.create(cutAtFeature(model, cut), {
    outputDim: cut.featureDim,
    spec: backbone.spec,
    offThread: true,
  });
  opts = { spec: backbone.spec, views: 1, seed: 7, batchSize: 8 };
  // A long shard first and a short one second: computed together, the short one ends first.
  await putShard('shards/a.tar', 40, 0);
  await putShard('shards/b.tar', 3, 1);
  await putShard('shards/c.tar', 10, 2);
});
afterAll(async () => {
  await extractor.release();
  await t.close();
});

describe('splitFeatures', () => {
  it('concatenates the shards in their order, each as computed alone, whatever order they finish in', async () => {
    const keys = ['shards/a.tar', 'shards/b.tar', 'shards/c.tar'];
    const progress: { done: number; rows: number; shardKey: string }[] = [];
    const split = await splitFeatures(
      t.store,
      keys,
      extractor,
      opts,
      (done, rows, shard: ShardFeatureRecord) => progress.push({ done, rows, shardKey: shard.shardKey }),
    );

    const alone = [];
    for (const key of keys) alone.push(await shardFeatures(t.store, key, extractor, opts));
    const features = Buffer.concat(alone.map((a) => Buffer.from(a.table.features.slice().buffer)));
    expect(Buffer.from(split.table.features.slice().buffer).equals(features)).toBe(true);
    expect([...split.table.labels]).toEqual(alone.flatMap((a) => [...a.table.labels]));
    expect(split.table.rows).toBe((40 + 3 + 10) * 2);
    expect(split.images).toBe(53);
    expect(split.shorterSide).toBe(80);
    expect(split.shards.map((s) => [s.shardKey, s.rows])).toEqual([
      ['shards/a.tar', 80],
      ['shards/b.tar', 6],
      ['shards/c.tar', 20],
    ]);

    // Progress counts shards as they finish: the short second shard before the long first one.
    expect(progress.map((p) => p.done)).toEqual([1, 2, 3]);
    expect(progress[0]!.shardKey).toBe('shards/b.tar');
    expect(progress.at(-1)!.rows).toBe(106);
  });

  it('opens no onnxruntime session when every shard is in the cache', async () => {
    await putShard('shards/cached.tar', 5, 3, 'sha-of-cached');
    await putShard('shards/uncached.tar', 5, 3, 'sha-of-uncached');
    const cache = { backboneSha256: 'tiny', featureTensor: 'pooled', reuse: true };
    const filled = await splitFeatures(t.store, ['shards/cached.tar'], extractor, { ...opts, cache });
    // Not a model at all: opening a session on it fails.
    const unopenable = await OnnxBatchModel.create(new Uint8Array([1, 2, 3]), {
      outputDim: extractor.outputDim,
      spec: extractor.spec,
      offThread: true,
      lazy: true,
    });
    const reused = await splitFeatures(t.store, ['shards/cached.tar'], unopenable, { ...opts, cache });
    expect(reused.shards.map((s) => s.cached)).toEqual([true]);
    expect(Buffer.from(reused.table.features.slice().buffer)).toEqual(
      Buffer.from(filled.table.features.slice().buffer),
    );
    await expect(
      splitFeatures(t.store, ['shards/uncached.tar'], unopenable, { ...opts, cache }),
    ).rejects.toThrow(/protobuf parsing failed|failed to load model/i);
    await unopenable.release();
  });

  it('a damaged shard fails the split with an error naming it', async () => {
    await t.store.put('shards/broken.tar', Buffer.from('not a tar archive at all'));
    await expect(
      splitFeatures(t.store, ['shards/b.tar', 'shards/broken.tar'], extractor, opts),
    ).rejects.toThrow(
      'shards/broken.tar: the tarball is truncated: the header at byte offset 0 needs 512 bytes, but the stream ended at byte offset 24; the shard is damaged: run again with --no-cache so Preprocess writes it again',
    );
  });
});
