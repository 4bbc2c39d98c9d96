import { createHash } from 'node:crypto';
import { parseClassName } from '../dataset/profiles.ts';
import { DataError } from '../errors.ts';
import { OnnxBatchModel } from '../model/batch-model.ts';
import {
  cutAtFeature,
  extractClassifier,
  findFeatureCutAsync,
  loadModel,
  mergeHead,
} from '../model/onnx-graph.ts';
import { fitStandardizer, foldStandardizer, standardize, toStandardized } from '../model/standardize.ts';
import { loadTf } from '../model/tf-backend.ts';
import { type EpochLog, trainHead } from '../model/train-head.ts';
import type { BackboneClassifier, FeatureCut, PreprocessSpec } from '../model/types.ts';
import { keys } from '../stages/keys.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { Split } from '../types.ts';
import { loadBackbone } from './backbone-source.ts';
import { recordDevices } from './devices.ts';
import { type ShardFeatureRecord, type SplitFeatures, splitFeatures } from './features.ts';
import type { TrainingConfig } from './training-config.ts';

// The training job (the AWS Batch container; a child process locally): frozen backbone
// features for the train and val shards (training images also as augmented views), a head
// trained with TensorFlow.js, and backbone + head written as ONE ONNX model. model.onnx is
// written last, so a failed run never leaves one behind.

export interface TrainJobInput {
  runId: string;
  training: TrainingConfig;
  /** One line of progress (an epoch, a features milestone): stdout in the container. */
  progress: (line: string) => void;
}

export interface ClassLabel {
  index: number;
  class: string;
  wnid?: string;
  breed: string;
}

export interface TrainJobResult {
  modelKey: string;
  labelsKey: string;
  trainingKey: string;
  bestEpoch: number;
  valAccuracy: number;
}

interface ClassesFile {
  datasetId: string;
  sha256: string;
  classes: string[];
}

async function shardKeys(store: ObjectStore, runId: string, split: Split): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(keys.shardPrefix(runId, split)))
    if (o.key.endsWith('.tar')) out.push(o.key);
  return out.sort();
}

/** Head start from the backbone's own classifier rows, when every class is one of its outputs. */
function initialHead(
  labels: ClassLabel[],
  classifier: BackboneClassifier | undefined,
  outputLabels: readonly string[] | undefined,
  featureDim: number,
): { weights: Float32Array; bias: Float32Array } | undefined {
  if (!classifier || !outputLabels || outputLabels.length !== classifier.outputs) return undefined;
  const columns = labels.map((l) => (l.wnid ? outputLabels.indexOf(l.wnid) : -1));
  if (columns.some((c) => c < 0)) return undefined;
  const weights = new Float32Array(featureDim * labels.length);
  for (let d = 0; d < featureDim; d++) {
    for (let c = 0; c < labels.length; c++)
      weights[d * labels.length + c] = classifier.weights[d * classifier.outputs + columns[c]!]!;
  }
  return { weights, bias: Float32Array.from(columns, (col) => classifier.bias[col]!) };
}

export async function trainModel(store: ObjectStore, input: TrainJobInput): Promise<TrainJobResult> {
  const { runId, training: cfg, progress } = input;
  const started = Date.now();
  const classesFile = await store.getJson<ClassesFile>(keys.classes(runId));
  const labels: ClassLabel[] = classesFile.classes.map((c, index) => ({
    index,
    class: c,
    ...parseClassName(c),
  }));
  const trainShards = await shardKeys(store, runId, 'train');
  const valShards = await shardKeys(store, runId, 'val');
  if (trainShards.length === 0 || valShards.length === 0) {
    throw new DataError(
      `no ${trainShards.length === 0 ? 'train' : 'val'} shards under runs/${runId}/shards/: run Preprocess for this run first`,
    );
  }

  const backbone = await loadBackbone(cfg, store);
  const model = loadModel(backbone.bytes, backbone.source);
  const cut: FeatureCut = await findFeatureCutAsync(model, {
    featureTensor: cfg.featureTensor,
    source: backbone.source,
  });
  checkBackboneInput(cut, backbone.spec, backbone.source);
  const extractor = await OnnxBatchModel.create(cutAtFeature(model, cut), {
    outputDim: cut.featureDim,
    spec: backbone.spec,
  });
  progress(
    `backbone ${backbone.source}: feature ${cut.featureTensor} (${cut.featureDim}-d), onnxruntime on ${extractor.provider}`,
  );

  const featuresStarted = Date.now();
  const featureOpts = {
    spec: backbone.spec,
    seed: cfg.seed,
    batchSize: cfg.featureBatch,
    cache: { backboneSha256: backbone.sha256, featureTensor: cut.featureTensor, reuse: cfg.cache },
  };
  let train: SplitFeatures;
  let val: SplitFeatures;
  try {
    train = await splitFeatures(
      store,
      trainShards,
      extractor,
      { ...featureOpts, views: cfg.views },
      (n, rows, shard) =>
        progress(`features: train shard ${n}/${trainShards.length} ${shardOrigin(shard)} (${rows} views)`),
    );
    val = await splitFeatures(store, valShards, extractor, { ...featureOpts, views: 0 }, (n, rows, shard) =>
      progress(`features: val shard ${n}/${valShards.length} ${shardOrigin(shard)} (${rows} images)`),
    );
  } finally {
    await extractor.release();
  }
  const tables = { train: train.table, val: val.table };
  const imageCounts = { train: train.images, val: val.images };
  /** Preprocess's --resize, recorded so `dogbreed evaluate` prepares images the same way. */
  const shardShorterSide = train.shorterSide;
  const featureSeconds = (Date.now() - featuresStarted) / 1000;
  progress(
    `features: ${tables.train.rows} train views of ${imageCounts.train} images, ${tables.val.rows} val images in ${featureSeconds.toFixed(1)} s`,
  );
  const present = new Set(tables.train.labels);
  const missing = labels.filter((l) => !present.has(l.index));
  if (missing.length > 0) {
    throw new DataError(
      `no training images for class ${missing.map((l) => l.class).join(', ')}: every class needs some`,
    );
  }

  const classifier = extractClassifier(model, cut);
  const rawInit =
    cfg.hidden === 0 && cfg.initFromBackbone
      ? initialHead(labels, classifier, backbone.outputLabels, cut.featureDim)
      : undefined;
  const scaler = fitStandardizer(tables.train.features, cut.featureDim);
  standardize(tables.train.features, scaler);
  standardize(tables.val.features, scaler);
  const init = rawInit && toStandardized(rawInit, scaler);
  const learningRate = cfg.learningRate ?? (init ? 1e-4 : 3e-3);
  const loadedTf = await loadTf();
  const { tf, backend } = loadedTf;
  const trainingStarted = Date.now();
  const result = await trainHead(
    {
      train: { features: tables.train.features, labels: tables.train.labels },
      val: { features: tables.val.features, labels: tables.val.labels },
      featureDim: cut.featureDim,
      classes: labels.length,
    },
    { ...cfg, learningRate, init, onEpoch: (e) => progress(formatEpoch(e, cfg.epochs)) },
    tf,
  );
  const head = foldStandardizer(result.head, scaler);
  const best = result.epochs.find((e) => e.epoch === result.bestEpoch);
  if (!best) throw new Error(`training reported best epoch ${result.bestEpoch} but no log for it`);
  progress(
    `best epoch ${result.bestEpoch}: val accuracy ${best.valAccuracy.toFixed(4)}${result.stoppedEarly ? ' (stopped early)' : ''}`,
  );

  const provenance = {
    runId,
    backbone: {
      source: backbone.source,
      sha256: backbone.sha256,
      featureTensor: cut.featureTensor,
      featureDim: cut.featureDim,
    },
    dataset: { datasetId: classesFile.datasetId, sha256: classesFile.sha256 },
    bestEpoch: result.bestEpoch,
    valAccuracy: best.valAccuracy,
    init: init ? 'backbone-classifier-rows' : 'random',
    shardShorterSide,
  };
  const merged = mergeHead(backbone.bytes, cut, head, {
    labels: JSON.stringify(labels.map((l) => l.class)),
    preprocess: JSON.stringify(backbone.spec),
    provenance: JSON.stringify(provenance),
  });
  const training = {
    schemaVersion: 1,
    ...provenance,
    backend,
    featureProvider: extractor.provider,
    devices: recordDevices(loadedTf, extractor.provider),
    preprocess: backbone.spec,
    hyperparameters: { ...cfg, learningRate },
    data: {
      trainImages: imageCounts.train,
      trainViews: tables.train.rows,
      valImages: imageCounts.val,
      trainShards,
      valShards,
      /** Per shard: features computed or reused from the cache, and how long that took. */
      featureShards: [...train.shards, ...val.shards],
    },
    epochs: result.epochs,
    stoppedEarly: result.stoppedEarly,
    modelSha256: createHash('sha256').update(merged).digest('hex'),
    timings: {
      featureSeconds,
      trainingSeconds: (Date.now() - trainingStarted) / 1000,
      totalSeconds: (Date.now() - started) / 1000,
    },
  };
  const out = {
    modelKey: keys.model(runId),
    labelsKey: keys.modelLabels(runId),
    trainingKey: keys.modelTraining(runId),
  };
  await store.putJson(out.labelsKey, { classes: labels });
  await store.putJson(out.trainingKey, training);
  await store.put(out.modelKey, Buffer.from(merged), {
    contentType: 'application/octet-stream',
    metadata: { sha256: training.modelSha256 },
  });
  return { ...out, bestEpoch: result.bestEpoch, valAccuracy: best.valAccuracy };
}

export function checkBackboneInput(cut: FeatureCut, spec: PreprocessSpec, source: string): void {
  const [, a, b, c] = cut.inputShape;
  const [h, w, ch] = spec.layout === 'NCHW' ? [b, c, a] : [a, b, c];
  const fixed = (n: number | undefined, want: number) => n === undefined || n <= 0 || n === want;
  if (!fixed(ch, 3) || !fixed(h, spec.cropSize) || !fixed(w, spec.cropSize)) {
    throw new DataError(
      `backbone ${source} takes input ${JSON.stringify(cut.inputShape)}, but the preprocessing gives ${spec.layout} 3×${spec.cropSize}×${spec.cropSize}: set the backbone's preprocessing in the run configuration (training.preprocess: cropSize, resizeShorter, layout)`,
    );
  }
}

function shardOrigin(s: ShardFeatureRecord): string {
  return s.cached
    ? `reused from cache in ${s.seconds.toFixed(1)} s`
    : `computed in ${s.seconds.toFixed(1)} s`;
}

function formatEpoch(e: EpochLog, epochs: number): string {
  return `epoch ${e.epoch}/${epochs} train loss ${e.trainLoss.toFixed(4)} acc ${e.trainAccuracy.toFixed(4)} · val loss ${e.valLoss.toFixed(4)} acc ${e.valAccuracy.toFixed(4)} · ${e.seconds.toFixed(1)}s`;
}
