import * as z from 'zod';
import { checkDecayStep, HEAD_HYPERPARAMETERS, MAX_EPOCHS } from '../model/head-hyperparameters.ts';
import { flag, integer, list, number, oneOf, record, text } from '../schema/fields.ts';
import { parseInput } from '../schema/parse.ts';

// The TrainModel configuration: what `dogbreed run` flags and the execution input may say
// about the backbone and the head, with the defaults. It travels to the Batch container as one
// small JSON environment variable (Batch refuses container overrides over 8 KiB).

const channels = list(number(-1000, 1000)).check((ctx) => {
  if (ctx.value.length !== 3)
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: `must list 3 numbers (one per channel), got ${ctx.value.length}`,
    });
});
const triple = (a: number[]) => a as [number, number, number];

/** The backbone's preprocessing; ImageNet defaults for URIs, the tiny backbone's own for `tiny`. */
const PreprocessSchema = record({
  resizeShorter: integer(8, 4096).optional(),
  cropSize: integer(8, 4096).optional(),
  mean: channels.transform(triple).optional(),
  std: channels
    .check((ctx) => {
      if (ctx.value.some((s) => s <= 0))
        ctx.issues.push({
          code: 'custom',
          input: ctx.value,
          message: `must be positive, got ${JSON.stringify(ctx.value)}`,
        });
    })
    .transform(triple)
    .optional(),
  layout: oneOf(['NCHW', 'NHWC']).optional(),
  channelOrder: oneOf(['RGB', 'BGR']).optional(),
});

/**
 * `tiny` (built in, for the synthetic sample) or ONNX ImageNet classifiers: https://, s3://,
 * file://, path. Several: their features are concatenated under one head, in one model. One
 * string (comma-separated for several) or a list; no empty or repeated entries.
 */
export const BackbonesSchema = z
  .union([text(), list(text())], { error: 'must be a backbone or a list of them' })
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()))
  .check((ctx) => {
    const names = ctx.value;
    const repeated = names.find((s, i) => names.indexOf(s) !== i);
    const message = names.includes('')
      ? `lists an empty backbone (${JSON.stringify(names.join(','))}): name each one`
      : repeated !== undefined
        ? `names backbone ${repeated} twice`
        : undefined;
    if (message) ctx.issues.push({ code: 'custom', input: names, message });
  });

const h = HEAD_HYPERPARAMETERS;

export const TrainingConfigSchema = record({
  backbone: BackbonesSchema.default(() => ['tiny']),
  preprocess: PreprocessSchema.optional(),
  /** Pooled feature tensor name, when it cannot be found automatically. */
  featureTensor: text().optional(),
  /** What the backbone's outputs are: `imagenet` (1000 wnid-sorted classes) or `none`. */
  backboneLabels: oneOf(['imagenet', 'none']).default('imagenet'),
  /** Start the linear head from the backbone's classifier rows when every class is one of them. */
  initFromBackbone: flag().default(true),
  /** Augmented views per training image, besides its evaluation view. */
  views: integer(0, 16).default(2),
  hidden: h.hidden.default(0),
  dropout: h.dropout.default(0.2),
  /** Adam's learning rate; unset: by the head's start (START_RECIPES in head-choice.ts). */
  learningRate: h.learningRate.optional(),
  /** Decoupled weight decay; unset: by the head's start (START_RECIPES in head-choice.ts). */
  weightDecay: h.weightDecay.optional(),
  labelSmoothing: h.labelSmoothing.default(0.1),
  batchSize: h.batchSize.default(64),
  /** A run trains at least one epoch. */
  epochs: integer(1, MAX_EPOCHS).default(30),
  patience: h.patience.default(5),
  seed: h.seed.default(1),
  /** Images per onnxruntime call when computing features. */
  featureBatch: integer(1, 4096).default(32),
  /** Reuse backbone features from the content-addressed cache (`--no-cache`: false). */
  cache: flag().default(true),
  /** The model averages the logits of the image and its horizontal mirror (test-time flip). */
  flip: flag().default(false),
  /** Sweep step sizes and label smoothing per head (TUNE_GRID in head-choice.ts), best on val. */
  tune: flag().default(false),
}).check(checkDecayStep);

export type TrainingConfig = z.output<typeof TrainingConfigSchema>;
/** What a configuration may say: any subset, the rest defaults. */
export type TrainingOptions = z.input<typeof TrainingConfigSchema>;

export const TRAINING_DEFAULTS: TrainingConfig = TrainingConfigSchema.parse({});

export function parseTrainingConfig(value: unknown, name = 'training'): TrainingConfig {
  return parseInput(TrainingConfigSchema, value ?? {}, { name });
}
