import { type OnnxBatchModel, RowTable, runBatched } from '../model/batch-model.ts';
import { evalView, trainView } from '../model/image-tensor.ts';
import type { PreprocessSpec } from '../model/types.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { hashString, mulberry32 } from '../util/prng.ts';
import { readShard } from './shard-reader.ts';

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

export async function shardFeatures(
  store: ObjectStore,
  shardKey: string,
  extractor: OnnxBatchModel,
  opts: FeatureOptions,
): Promise<ShardFeatures> {
  const table = new RowTable(extractor.outputDim);
  let images = 0;
  let shorterSide: number | undefined;
  await runBatched(
    readShard(store, shardKey),
    async (img) => {
      images++;
      shorterSide ??= Math.min(img.sample.width, img.sample.height);
      const views = [evalView(img.jpeg, opts.spec, img.id)];
      if (opts.views > 0) {
        const rand = mulberry32(opts.seed ^ hashString(img.id));
        for (let v = 0; v < opts.views; v++) views.push(trainView(img.jpeg, opts.spec, { rand }, img.id));
      }
      return { tensors: await Promise.all(views), label: img.sample.label };
    },
    extractor,
    { batchSize: opts.batchSize, table },
  );
  return { table, images, shorterSide };
}

/** Features of every shard of a split, concatenated in shard order. */
export async function splitFeatures(
  store: ObjectStore,
  shardKeys: readonly string[],
  extractor: OnnxBatchModel,
  opts: FeatureOptions,
  onShard?: (done: number, rows: number) => void,
): Promise<ShardFeatures> {
  const table = new RowTable(extractor.outputDim);
  let images = 0;
  let shorterSide: number | undefined;
  for (const [i, key] of shardKeys.entries()) {
    const shard = await shardFeatures(store, key, extractor, opts);
    table.push(shard.table.features, shard.table.labels);
    images += shard.images;
    shorterSide ??= shard.shorterSide;
    onShard?.(i + 1, table.rows);
  }
  return { table, images, shorterSide };
}
