import type { Split } from '../types.ts';

// Every S3 key the pipeline writes, in one place (the layout in DESIGN.md).

const pad5 = (n: number) => String(n).padStart(5, '0');

export const keys = {
  datasetTar: (datasetId: string) => `datasets/${datasetId}/images.tar`,
  datasetIndex: (datasetId: string) => `datasets/${datasetId}/index.jsonl`,
  datasetInventory: (datasetId: string) => `datasets/${datasetId}/inventory.json`,
  /** Uploads land here first; only a verified checksum promotes them to images.tar. */
  incoming: (token: string) => `datasets/_incoming/${token}.tar`,
  /** What a source looked like when fetched, to skip an unchanged one. */
  sourceRecord: (sourceHash: string) => `datasets/_sources/${sourceHash}.json`,
  manifest: (runId: string, split: Split) => `runs/${runId}/manifests/${split}.jsonl`,
  classes: (runId: string) => `runs/${runId}/manifests/classes.json`,
  shardList: (runId: string, split: Split, index: number) =>
    `runs/${runId}/manifests/shards/${split}/shard-${pad5(index)}.jsonl`,
  shard: (runId: string, split: Split, index: number) =>
    `runs/${runId}/shards/${split}/shard-${pad5(index)}.tar`,
  shardPrefix: (runId: string, split: Split) => `runs/${runId}/shards/${split}/`,
  model: (runId: string) => `runs/${runId}/model/model.onnx`,
  modelLabels: (runId: string) => `runs/${runId}/model/labels.json`,
  modelTraining: (runId: string) => `runs/${runId}/model/training.json`,
  predictions: (runId: string, index: number) => `runs/${runId}/predictions/shard-${pad5(index)}.json`,
  metrics: (runId: string) => `reports/${runId}/metrics.json`,
  reportHtml: (runId: string) => `reports/${runId}/report.html`,
  champion: () => 'models/current.json',
  failure: (runId: string) => `reports/${runId}/failure.json`,
  /** The step cache: objects named by the hash of everything that determines their bytes. */
  cachePrefix: 'cache/',
  cachedShard: (hash: string) => `cache/shards/${hash}.tar`,
  cachedFeatures: (hash: string) => `cache/features/${hash}.f32`,
};
