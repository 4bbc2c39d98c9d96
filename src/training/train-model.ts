import { createHash } from 'node:crypto';
import { parseClassName } from '../dataset/profiles.ts';
import { DataError, InputError } from '../errors.ts';
import { OnnxBatchModel } from '../model/batch-model.ts';
import {
  cutAtFeature,
  extractClassifier,
  findFeatureCutAsync,
  loadModel,
  mergeBackbones,
} from '../model/onnx-graph.ts';
import { loadTf } from '../model/tf-backend.ts';
import type { EpochLog } from '../model/train-head.ts';
import type { BackboneClassifier, FeatureCut, PreprocessSpec } from '../model/types.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { Split } from '../types.ts';
import { loadBackbone, type ResolvedBackbone } from './backbone-source.ts';
import { recordDevices } from './devices.ts';
import { type ShardFeatureRecord, type SplitFeatures, splitFeatures } from './features.ts';
import { type BackboneTables, chooseHead, type HeadChoice, headStart } from './head-choice.ts';
import type { TrainingConfig } from './training-config.ts';

// The training job (the AWS Batch container; a child process locally): frozen features of each
// backbone for the train and val shards (training images also as augmented views), a head
// chosen on val (head-choice.ts) trained with TensorFlow.js, and backbones + head written as ONE
// ONNX model. model.onnx is
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

  if (cfg.featureTensor && cfg.backbone.length > 1) {
    throw new InputError(
      `training.featureTensor names one tensor, but ${cfg.backbone.length} backbones are given: leave it out (their pooled features are found automatically) or train on one backbone`,
    );
  }
  // TensorFlow.js loads (and compiles its WebAssembly) while the features are read or computed.
  const tfLoading = loadTf();
  tfLoading.catch(() => undefined);
  const featuresStarted = Date.now();
  const computed: BackboneFeatures[] = [];
  for (const uri of cfg.backbone)
    computed.push(await backboneFeatures(store, uri, cfg, { trainShards, valShards }, progress));
  checkSamePreprocessing(computed);
  const [first] = computed as [BackboneFeatures, ...BackboneFeatures[]];
  const imageCounts = { train: first.train.images, val: first.val.images };
  /** Preprocess's --resize, recorded so `dogbreed evaluate` prepares images the same way. */
  const shardShorterSide = first.train.shorterSide;
  const featureSeconds = (Date.now() - featuresStarted) / 1000;
  const trainRows = first.train.table.rows;
  progress(
    `features: ${trainRows} train views of ${imageCounts.train} images, ${first.val.table.rows} val images in ${featureSeconds.toFixed(1)} s`,
  );
  const present = new Set(first.train.table.labels);
  const missing = labels.filter((l) => !present.has(l.index));
  if (missing.length > 0) {
    throw new DataError(
      `no training images for class ${missing.map((l) => l.class).join(', ')}: every class needs some`,
    );
  }

  const tables: BackboneTables[] = computed.map((b) => {
    const start = headStart({
      wnids: labels.map((l) => l.wnid),
      classifier: b.classifier,
      outputLabels: b.backbone.outputLabels,
      featureDim: b.cut.featureDim,
      hidden: cfg.hidden,
      initFromBackbone: cfg.initFromBackbone,
    });
    progress(
      start.kind === 'random'
        ? `head start for ${b.backbone.source}: random weights, because ${start.reason}`
        : `head start for ${b.backbone.source}: its own ImageNet classifier rows for the ${labels.length} classes`,
    );
    return {
      source: b.backbone.source,
      featureDim: b.cut.featureDim,
      train: b.train.table,
      val: b.val.table,
      start,
    };
  });
  const loadedTf = await tfLoading;
  const { tf, backend } = loadedTf;
  const trainingStarted = Date.now();
  const choice = await chooseHead(tables, labels.length, cfg, tf, (label, e) =>
    progress(`${label}: ${formatEpoch(e, cfg.epochs)}`),
  );
  progress(describeChoice(choice));

  const backbones = computed.map((b, i) => ({
    sha256: b.backbone.sha256,
    featureTensor: b.cut.featureTensor,
    ...choice.backbones[i]!,
  }));
  const featureDim = backbones.reduce((n, b) => n + b.featureDim, 0);
  const provenance = {
    runId,
    /** One entry when one backbone; several joined with " + " (their details: `backbones`). */
    backbone: {
      source: backbones.map((b) => b.source).join(' + '),
      sha256: backbones.length === 1 ? first.backbone.sha256 : undefined,
      featureTensor: backbones.map((b) => b.featureTensor).join(' + '),
      featureDim,
    },
    backbones,
    dataset: { datasetId: classesFile.datasetId, sha256: classesFile.sha256 },
    bestEpoch: choice.bestEpoch,
    valAccuracy: choice.valAccuracy,
    head: choice.chosen,
    init: backbones.every((b) => b.init === 'backbone-classifier-rows')
      ? 'backbone-classifier-rows'
      : 'random',
    zeroShotValAccuracy: choice.zeroShotValAccuracy,
    testTimeFlip: cfg.flip,
    shardShorterSide,
  };
  const merged = mergeBackbones(
    computed.map((b) => ({ bytes: b.backbone.bytes, cut: b.cut })),
    choice.head,
    {
      labels: JSON.stringify(labels.map((l) => l.class)),
      preprocess: JSON.stringify(first.backbone.spec),
      provenance: JSON.stringify(provenance),
    },
    { flip: cfg.flip, layout: first.backbone.spec.layout },
  );
  const training = {
    schemaVersion: 1,
    ...provenance,
    backend,
    featureProvider: first.provider,
    devices: recordDevices(loadedTf, first.provider),
    preprocess: first.backbone.spec,
    hyperparameters: cfg,
    trainedHeads: choice.trained,
    headCandidates: choice.candidates,
    data: {
      trainImages: imageCounts.train,
      trainViews: trainRows,
      valImages: imageCounts.val,
      trainShards,
      valShards,
      /** Per backbone and shard: features computed or reused from the cache, and how long that took. */
      featureShards: computed.flatMap((b) => [...b.train.shards, ...b.val.shards]),
    },
    epochs: choice.epochs,
    stoppedEarly: choice.stoppedEarly,
    modelSha256: createHash('sha256').update(merged).digest('hex'),
    timings: {
      featureSeconds,
      backboneFeatureSeconds: computed.map((b) => b.seconds),
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
  return { ...out, bestEpoch: choice.bestEpoch, valAccuracy: choice.valAccuracy };
}

interface BackboneFeatures {
  backbone: ResolvedBackbone;
  cut: FeatureCut;
  classifier: BackboneClassifier | undefined;
  train: SplitFeatures;
  val: SplitFeatures;
  provider: string;
  seconds: number;
}

/** One backbone's train and val features (training images also as augmented views). */
async function backboneFeatures(
  store: ObjectStore,
  uri: string,
  cfg: TrainingConfig,
  shards: { trainShards: string[]; valShards: string[] },
  progress: (line: string) => void,
): Promise<BackboneFeatures> {
  const started = Date.now();
  const backbone = await loadBackbone(uri, cfg, store);
  const model = loadModel(backbone.bytes, backbone.source);
  const cut: FeatureCut = await findFeatureCutAsync(model, {
    featureTensor: cfg.featureTensor,
    source: backbone.source,
  });
  checkBackboneInput(cut, backbone.spec, backbone.source);
  const extractor = await OnnxBatchModel.create(cutAtFeature(model, cut), {
    outputDim: cut.featureDim,
    spec: backbone.spec,
    offThread: true,
    lazy: true,
  });
  progress(
    `backbone ${backbone.source}: feature ${cut.featureTensor} (${cut.featureDim}-d), onnxruntime on ${extractor.provider}`,
  );
  const featureOpts = {
    spec: backbone.spec,
    seed: cfg.seed,
    batchSize: cfg.featureBatch,
    cache: { backboneSha256: backbone.sha256, featureTensor: cut.featureTensor, reuse: cfg.cache },
  };
  const { trainShards, valShards } = shards;
  try {
    const train = await splitFeatures(
      store,
      trainShards,
      extractor,
      { ...featureOpts, views: cfg.views },
      (n, rows, shard) =>
        progress(`features: train shard ${n}/${trainShards.length} ${shardOrigin(shard)} (${rows} views)`),
    );
    const val = await splitFeatures(
      store,
      valShards,
      extractor,
      { ...featureOpts, views: 0 },
      (n, rows, shard) =>
        progress(`features: val shard ${n}/${valShards.length} ${shardOrigin(shard)} (${rows} images)`),
    );
    const classifier = extractClassifier(model, cut);
    return {
      backbone,
      cut,
      classifier,
      train,
      val,
      provider: extractor.provider,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await extractor.release();
  }
}

/** Backbones of one model read one image tensor: their preprocessing must be the same. */
function checkSamePreprocessing(backbones: BackboneFeatures[]): void {
  const [first, ...rest] = backbones;
  for (const b of rest) {
    if (JSON.stringify(b.backbone.spec) !== JSON.stringify(first!.backbone.spec)) {
      throw new DataError(
        `backbones ${first!.backbone.source} and ${b.backbone.source} need different preprocessing (${JSON.stringify(first!.backbone.spec)} vs ${JSON.stringify(b.backbone.spec)}): one model feeds one image to both, so train them in separate runs or pick backbones with the same input`,
      );
    }
  }
}

function describeChoice(c: HeadChoice): string {
  const candidates = c.candidates.map((x) => `${x.name} ${x.valAccuracy.toFixed(4)}`).join(', ');
  const alone =
    c.backbones.length > 1
      ? ` · alone: ${c.backbones.map((b) => `${b.source} ${b.valAccuracy.toFixed(4)}`).join(', ')}`
      : '';
  return `head: ${c.chosen}, val accuracy ${c.valAccuracy.toFixed(4)} (best epoch ${c.bestEpoch}${c.stoppedEarly ? ', stopped early' : ''}) · candidates on val: ${candidates}${alone}`;
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
