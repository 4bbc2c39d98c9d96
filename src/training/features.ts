import { type OnnxBatchModel, RowTable, runBatched } from '../model/batch-model.ts';
import { evalView, type TensorPool, trainView } from '../model/image-tensor.ts';
import type { PreprocessSpec } from '../model/types.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { mapConcurrent } from '../util/concurrency.ts';
import { hashString, mulberry32 } from '../util/prng.ts';
import { featureCacheKey, readCachedFeatures, writeCachedFeatures } from './feature-cache.ts';
import { readShard, type ShardImage } from './shard-reader.ts';

// Backbone features of preprocessed shards, one shard at a time: the unit a run computes,
// reports and (per shard) can reuse. Each image gives its evaluation view, then `views`
// augmented views drawn from a generator seeded by the run's seed and the image id, so a
// shard's features depend only on the shard, the backbone, the preprocessing, views and seed.

export interface FeatureOptions {
  spec: PreprocessSpec;
  /** Augmented views per image besides its evaluation view (0 for val and test). */
  views: number;
  seed: number;
  /** Images per onnxruntime call. */
  batchSize: number;
}

export interface ShardFeatures {
  /** One row per view: [images × (1 + views)] rows of `dim` features, with labels. */
  table: RowTable;
  images: number;
  /** The shorter side of the shard's images (Preprocess's --resize), undefined when empty. */
  shorterSide?: number;
}

/** One shard image's input tensors: its evaluation view, then `views` augmented ones. */
export function imageViews(
  img: ShardImage,
  opts: FeatureOptions,
  pool?: TensorPool,
): Promise<Float32Array[]> {
  const views = [evalView(img.jpeg, opts.spec, img.id, pool?.take())];
  if (opts.views > 0) {
    const rand = mulberry32(opts.seed ^ hashString(img.id));
    for (let v = 0; v < opts.views; v++) {
      views.push(trainView(img.jpeg, opts.spec, { rand }, img.id, pool?.take()));
    }
  }
  return Promise.all(views);
}

export async function shardFeatures(
  store: ObjectStore,
  shardKey: string,
  extractor: OnnxBatchModel,
  opts: FeatureOptions,
): Promise<ShardFeatures> {
  const table = new RowTable(extractor.outputDim);
  // Kept by the extractor across shards and splits: a pool per shard allocated its first chunks.
  const pool = extractor.inputs;
  let images = 0;
  let shorterSide: number | undefined;
  await runBatched(
    readShard(store, shardKey),
    async (img) => {
      images++;
      shorterSide ??= Math.min(img.sample.width, img.sample.height);
      return { tensors: await imageViews(img, opts, pool), label: img.sample.label };
    },
    extractor,
    { batchSize: opts.batchSize, table, pool },
  );
  return { table, images, shorterSide };
}

/** Where a shard's features may be cached: what, besides the options, determines them. */
export interface FeatureCacheOptions {
  backboneSha256: string;
  featureTensor: string;
  /** false (`--no-cache`): recompute, and refresh the cached copy. */
  reuse: boolean;
}

/** What happened to one shard: for progress, training.json and metrics.json. */
export interface ShardFeatureRecord {
  shardKey: string;
  cacheKey?: string;
  cached: boolean;
  rows: number;
  seconds: number;
}

export interface SplitFeatures extends ShardFeatures {
  shards: ShardFeatureRecord[];
}

/** One shard's features: from the cache when they are there whole, else computed and cached. */
async function cachedShardFeatures(
  store: ObjectStore,
  shardKey: string,
  extractor: OnnxBatchModel,
  opts: FeatureOptions,
  cache: FeatureCacheOptions | undefined,
): Promise<{ features: ShardFeatures; cacheKey?: string; cached: boolean }> {
  // Preprocess records each shard's sha256; a shard without one cannot be named in the cache.
  const shardSha256 = cache && (await store.head(shardKey))?.metadata.sha256;
  if (!cache || !shardSha256) {
    return { features: await shardFeatures(store, shardKey, extractor, opts), cached: false };
  }
  const cacheKey = featureCacheKey({ ...cache, shardSha256, ...opts });
  const hit = cache.reuse ? await readCachedFeatures(store, cacheKey, extractor.outputDim) : undefined;
  if (hit) return { features: hit, cacheKey, cached: true };
  const features = await shardFeatures(store, shardKey, extractor, opts);
  await writeCachedFeatures(store, cacheKey, features);
  return { features, cacheKey, cached: false };
}

/**
 * Shards computed at once. Two: while one shard's first batch decodes (nothing to run yet) or its
 * last batch runs (nothing left to decode), the other's work keeps both halves busy; each shard's
 * batches, and so its features, stay what they are alone.
 */
export const SHARDS_IN_FLIGHT = 2;

/** Features of every shard of a split, concatenated in shard order. */
export async function splitFeatures(
  store: ObjectStore,
  shardKeys: readonly string[],
  extractor: OnnxBatchModel,
  opts: FeatureOptions & { cache?: FeatureCacheOptions },
  onShard?: (done: number, rows: number, shard: ShardFeatureRecord) => void,
): Promise<SplitFeatures> {
  const { cache, ...featureOpts } = opts;
  let done = 0;
  let rowsDone = 0;
  const computed = await mapConcurrent(shardKeys, SHARDS_IN_FLIGHT, async (shardKey) => {
    const started = Date.now();
    const { features, cacheKey, cached } = await cachedShardFeatures(
      store,
      shardKey,
      extractor,
      featureOpts,
      cache,
    );
    const record = {
      shardKey,
      cacheKey,
      cached,
      rows: features.table.rows,
      seconds: (Date.now() - started) / 1000,
    };
    rowsDone += record.rows;
    onShard?.(++done, rowsDone, record);
    return { features, record };
  });
  let images = 0;
  let shorterSide: number | undefined;
  for (const { features } of computed) {
    images += features.images;
    shorterSide ??= features.shorterSide;
  }
  return {
    table: RowTable.concat(
      extractor.outputDim,
      computed.map((c) => c.features.table),
    ),
    images,
    shorterSide,
    shards: computed.map((c) => c.record),
  };
}
