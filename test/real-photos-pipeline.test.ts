import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readTar } from '../src/dataset/tar-reader.ts';
import { LOCAL_BUCKET, type LocalRunResult, runLocalPipeline } from '../src/local/pipeline.ts';
import { startLocalS3 } from '../src/local/s3-server.ts';
import { openStore } from '../src/storage/s3-store.ts';
import type { ManifestsResult, ShardResult, ShardSample, VerifyResult } from '../src/types.ts';
import { testAccuracy } from './helpers/evaluate.ts';
import { describeShared, SHARED_BACKBONE, SHARED_SAMPLE_DIR } from './helpers/shared.ts';

// The real Stanford Dogs photos in ../shared (120 breeds × 40), as an ImageFolder directory
// source, through Preprocess and TrainModel with the real int8 MobileNetV2 backbone.

describeShared('local pipeline on real Stanford Dogs photos', () => {
  let workspace: string;
  let result: LocalRunResult;
  let classes: string[];
  let files: string[];

  beforeAll(async () => {
    classes = readdirSync(SHARED_SAMPLE_DIR).sort();
    files = classes.flatMap((c) => readdirSync(join(SHARED_SAMPLE_DIR, c)).map((f) => `${c}/${f}`));
    workspace = await mkdtemp(join(tmpdir(), 'dogbreed-real-'));
    result = await runLocalPipeline({
      workspace,
      config: {
        source: SHARED_SAMPLE_DIR,
        seed: 11,
        shardSize: 400,
        training: { backbone: SHARED_BACKBONE, views: 1 },
      },
      runId: 'real-photos',
    });
  }, 600_000);
  afterAll(() => rm(workspace, { recursive: true, force: true }));

  it('indexes every photo, stratified 0.7/0.15/0.15 per breed, in 13 shards', () => {
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    const out = result.output as { verify: VerifyResult; manifests: ManifestsResult; shards: ShardResult[] };
    expect(out.verify).toMatchObject({ images: files.length, classes: 120, invalid: 0 });
    // 40 per breed → 28 / 6 / 6 (largest remainder), × 120 breeds
    expect(out.manifests.counts).toEqual({ train: 3360, val: 720, test: 720 });
    // train 3360/400 → 9 shards, val and test 720/400 → 2 each
    expect(out.shards.map((s) => `${s.split}:${s.index}:${s.images}`)).toEqual([
      ...Array.from({ length: 8 }, (_, i) => `train:${i}:400`),
      'train:8:160',
      'val:0:400',
      'val:1:320',
      'test:0:400',
      'test:1:320',
    ]);
  });

  it('puts every photo in exactly one shard of one split, with its breed label', async () => {
    const s3 = await startLocalS3({ directory: join(workspace, 's3'), bucket: LOCAL_BUCKET });
    const store = openStore({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint });
    try {
      const seen = new Map<string, string>();
      const perClassSplit = new Map<string, number>();
      for (const shard of (result.output as { shards: ShardResult[] }).shards) {
        for await (const e of readTar(await store.getStream(shard.key))) {
          if (!e.name.endsWith('.json')) continue;
          const sample = JSON.parse(Buffer.from(e.data!).toString()) as ShardSample;
          expect(seen.has(sample.member), sample.member).toBe(false);
          seen.set(sample.member, shard.split);
          expect(classes[sample.label]).toBe(sample.class);
          expect(Math.min(sample.width, sample.height)).toBe(256);
          const k = `${sample.class}|${shard.split}`;
          perClassSplit.set(k, (perClassSplit.get(k) ?? 0) + 1);
        }
      }
      expect([...seen.keys()].sort()).toEqual([...files].sort());
      for (const c of classes) {
        expect([
          perClassSplit.get(`${c}|train`),
          perClassSplit.get(`${c}|val`),
          perClassSplit.get(`${c}|test`),
        ]).toEqual([28, 6, 6]);
      }
    } finally {
      await s3.close();
    }
  });

  it('trains a head from the backbone’s ImageNet rows that reaches ≥ 0.72 top-1 on the run’s own test split', async () => {
    const s3 = await startLocalS3({ directory: join(workspace, 's3'), bucket: LOCAL_BUCKET });
    const store = openStore({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint });
    try {
      const training = await store.getJson<{
        init: string;
        backbone: { featureDim: number };
        valAccuracy: number;
      }>('runs/real-photos/model/training.json');
      expect(training.init).toBe('backbone-classifier-rows');
      expect(training.backbone.featureDim).toBe(1280);
      const { accuracy, images } = await testAccuracy(store, 'real-photos');
      expect(images).toBe(720);
      expect(accuracy).toBeGreaterThanOrEqual(0.72);
    } finally {
      await s3.close();
    }
  });
});
