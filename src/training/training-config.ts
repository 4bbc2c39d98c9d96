import { InputError } from '../errors.ts';
import type { HeadTrainingOptions } from '../model/train-head.ts';
import type { PreprocessSpec } from '../model/types.ts';
import { array, integer, number, object, oneOf, optional, string } from '../validate.ts';

// The TrainModel configuration: what `dogbreed run` flags and the execution input may say
// about the backbone and the head, with the defaults. It travels to the Batch container as one
// small JSON environment variable (Batch refuses container overrides over 8 KiB).

/** The head's hyperparameters (hidden, dropout, weightDecay, …: see train-head.ts), and the rest. */
export interface TrainingConfig
  extends Omit<HeadTrainingOptions, 'learningRate' | 'weightDecay' | 'init' | 'onEpoch'> {
  /**
   * `tiny` (built in, for the synthetic sample) or ONNX ImageNet classifiers: https://, s3://,
   * file://, path. Several: their features are concatenated under one head, in one model. The
   * execution input may say one string (comma-separated for several) or a list.
   */
  backbone: string[];
  /** The backbone's preprocessing; ImageNet defaults for URIs, the tiny backbone's own for `tiny`. */
  preprocess?: Partial<PreprocessSpec>;
  /** Pooled feature tensor name, when it cannot be found automatically. */
  featureTensor?: string;
  /** What the backbone's outputs are: `imagenet` (1000 wnid-sorted classes) or `none`. */
  backboneLabels: 'imagenet' | 'none';
  /** Start the linear head from the backbone's classifier rows when every class is one of them. */
  initFromBackbone: boolean;
  /** Augmented views per training image, besides its evaluation view. */
  views: number;
  /** Adam's learning rate; unset: by the head's start (START_RECIPES in head-choice.ts). */
  learningRate?: number;
  /** Decoupled weight decay; unset: by the head's start (START_RECIPES in head-choice.ts). */
  weightDecay?: number;
  /** Images per onnxruntime call when computing features. */
  featureBatch: number;
  /** Reuse backbone features from the content-addressed cache (`--no-cache`: false). */
  cache: boolean;
  /** The model averages the logits of the image and its horizontal mirror (test-time flip). */
  flip: boolean;
  /** Sweep step sizes and label smoothing per head (TUNE_GRID in head-choice.ts), best on val. */
  tune: boolean;
}

export const TRAINING_DEFAULTS: TrainingConfig = {
  backbone: ['tiny'],
  backboneLabels: 'imagenet',
  initFromBackbone: true,
  views: 2,
  hidden: 0,
  dropout: 0.2,
  labelSmoothing: 0.1,
  batchSize: 64,
  epochs: 30,
  patience: 5,
  seed: 1,
  featureBatch: 32,
  cache: true,
  flip: false,
  tune: false,
};

function triple(v: unknown, path: string): [number, number, number] {
  const a = array(v, path);
  if (a.length !== 3) throw new InputError(`${path} must list 3 numbers (one per channel), got ${a.length}`);
  return a.map((x, i) => number(x, `${path}[${i}]`, -1000, 1000)) as [number, number, number];
}

function parsePreprocess(v: unknown, path: string): Partial<PreprocessSpec> {
  const p = object(v, path);
  const out: Partial<PreprocessSpec> = {};
  if (p.resizeShorter !== undefined)
    out.resizeShorter = integer(p.resizeShorter, `${path}.resizeShorter`, 8, 4096);
  if (p.cropSize !== undefined) out.cropSize = integer(p.cropSize, `${path}.cropSize`, 8, 4096);
  if (p.mean !== undefined) out.mean = triple(p.mean, `${path}.mean`);
  if (p.std !== undefined) {
    out.std = triple(p.std, `${path}.std`);
    if (out.std.some((s) => s <= 0)) throw new InputError(`${path}.std must be positive`);
  }
  if (p.layout !== undefined) out.layout = oneOf(p.layout, `${path}.layout`, ['NCHW', 'NHWC'] as const);
  if (p.channelOrder !== undefined)
    out.channelOrder = oneOf(p.channelOrder, `${path}.channelOrder`, ['RGB', 'BGR'] as const);
  return out;
}

/** One string (comma-separated for several) or a list of them; no empty or repeated entries. */
export function parseBackbones(value: unknown, path: string): string[] {
  const items = Array.isArray(value)
    ? array(value, path).map((v, i) => string(v, `${path}[${i}]`))
    : string(value, path).split(',');
  const list = items.map((s) => s.trim());
  if (list.length === 0 || list.some((s) => s === '')) {
    throw new InputError(`${path} lists an empty backbone (${JSON.stringify(value)}): name each one`);
  }
  const repeated = list.find((s, i) => list.indexOf(s) !== i);
  if (repeated) throw new InputError(`${path} names backbone ${repeated} twice`);
  return list;
}

export function parseTrainingConfig(value: unknown, path = 'training'): TrainingConfig {
  const c = object(value ?? {}, path);
  const d = TRAINING_DEFAULTS;
  const bool = (v: unknown, p: string) => {
    if (typeof v !== 'boolean') throw new InputError(`${p} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    backbone: optional(c.backbone, (v) => parseBackbones(v, `${path}.backbone`)) ?? d.backbone,
    preprocess: optional(c.preprocess, (v) => parsePreprocess(v, `${path}.preprocess`)),
    featureTensor: optional(c.featureTensor, (v) => string(v, `${path}.featureTensor`)),
    backboneLabels:
      optional(c.backboneLabels, (v) => oneOf(v, `${path}.backboneLabels`, ['imagenet', 'none'] as const)) ??
      d.backboneLabels,
    initFromBackbone:
      optional(c.initFromBackbone, (v) => bool(v, `${path}.initFromBackbone`)) ?? d.initFromBackbone,
    views: optional(c.views, (v) => integer(v, `${path}.views`, 0, 16)) ?? d.views,
    hidden: optional(c.hidden, (v) => integer(v, `${path}.hidden`, 0, 8192)) ?? d.hidden,
    dropout: optional(c.dropout, (v) => number(v, `${path}.dropout`, 0, 0.95)) ?? d.dropout,
    learningRate: optional(c.learningRate, (v) => number(v, `${path}.learningRate`, 1e-7, 1)),
    weightDecay: optional(c.weightDecay, (v) => number(v, `${path}.weightDecay`, 0, 100)),
    labelSmoothing:
      optional(c.labelSmoothing, (v) => number(v, `${path}.labelSmoothing`, 0, 0.5)) ?? d.labelSmoothing,
    batchSize: optional(c.batchSize, (v) => integer(v, `${path}.batchSize`, 1, 65_536)) ?? d.batchSize,
    epochs: optional(c.epochs, (v) => integer(v, `${path}.epochs`, 1, 10_000)) ?? d.epochs,
    patience: optional(c.patience, (v) => integer(v, `${path}.patience`, 1, 10_000)) ?? d.patience,
    seed: optional(c.seed, (v) => integer(v, `${path}.seed`, 0, 2 ** 32 - 1)) ?? d.seed,
    featureBatch:
      optional(c.featureBatch, (v) => integer(v, `${path}.featureBatch`, 1, 4096)) ?? d.featureBatch,
    cache: optional(c.cache, (v) => bool(v, `${path}.cache`)) ?? d.cache,
    flip: optional(c.flip, (v) => bool(v, `${path}.flip`)) ?? d.flip,
    tune: optional(c.tune, (v) => bool(v, `${path}.tune`)) ?? d.tune,
  };
}
