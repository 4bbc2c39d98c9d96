import type * as z from 'zod';
import { GateSchema } from './metrics/gate.ts';
import {
  flag,
  integer,
  list,
  number,
  numberAbove,
  object,
  oneOf,
  record,
  seed,
  sha256,
  text,
} from './schema/fields.ts';
import { parseInput } from './schema/parse.ts';
import { TrainingConfigSchema } from './training/training-config.ts';
import { PROFILE_NAMES } from './types.ts';

// The run configuration: what the execution input may say, with the defaults every handler
// applies, so an execution started from the AWS console with only a source works. Checked whole
// by the first state (and by `dogbreed run` before it starts anything), so a bad option fails
// the run before any work.

export const DEFAULTS = {
  profile: 'imagefolder',
  seed: 1,
  split: [0.7, 0.15, 0.15],
  shardSize: 256,
  resizeShorter: 256,
} as const;

/** Images in one Preprocess shard at most; shard indexes have 5 digits (shard-NNNNN.tar). */
export const MAX_SHARD_SIZE = 100_000;
export const MAX_SHARD_INDEX = 99_999;

export type SplitRatios = [train: number, val: number, test: number];

/**
 * Train/val/test ratios. Each above 0: every class must appear in every split for per-class
 * metrics. They must sum to 1 (within float noise), so no share is silently rescaled.
 */
export const SplitSchema = list(numberAbove(0, 1, 'every class is in every split'))
  .check((ctx) => {
    const n = ctx.value.length;
    if (n !== 3)
      ctx.issues.push({
        code: 'custom',
        input: ctx.value,
        message: `must list 3 ratios (train, val, test), got ${n}`,
        abort: true,
      });
  })
  .check((ctx) => {
    const sum = ctx.value.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > 1e-6)
      ctx.issues.push({
        code: 'custom',
        input: ctx.value,
        message: `must sum to 1 (train + val + test), got ${Number(sum.toFixed(9))}`,
      });
  })
  .transform((v) => v as SplitRatios);

/** Shorter side of the preprocessed images, in pixels. */
export const ResizeShorterSchema = integer(32, 2048);

export const ConfigSchema = record({
  /** https://, http://, s3://, file:// URL or local path (tarball or ImageFolder directory). */
  source: text(),
  expectedSha256: text()
    .transform((s) => s.toLowerCase())
    .pipe(sha256())
    .optional(),
  profile: oneOf(PROFILE_NAMES).default(DEFAULTS.profile),
  minPerClass: integer(1, 1_000_000).optional(),
  /** Largest share of invalid images tolerated (0.05: 5%); the profile's by default. */
  maxInvalidShare: number(0, 1).optional(),
  seed: seed().default(DEFAULTS.seed),
  split: SplitSchema.default(() => DEFAULTS.split.slice() as SplitRatios),
  shardSize: integer(1, MAX_SHARD_SIZE).default(DEFAULTS.shardSize),
  resizeShorter: ResizeShorterSchema.default(DEFAULTS.resizeShorter),
  /** Reuse preprocessed shards from the content-addressed cache (`--no-cache`: false). */
  cache: flag().default(true),
  /** Options of the TrainModel job (backbone, head, hyperparameters); see training-config.ts. */
  training: TrainingConfigSchema.prefault({}),
  /** Quality-gate thresholds; the study's targets by default. */
  gate: GateSchema.prefault({}),
});

/** The configuration as handlers use it: every default applied. */
export type ResolvedConfig = z.output<typeof ConfigSchema>;
/** What an execution input's `config` may say. */
export type PipelineConfig = z.input<typeof ConfigSchema>;

/** What starts an execution (the state machine's Init adds the run id: the execution's name). */
export const ExecutionInputSchema = object({ config: ConfigSchema });
export type ExecutionInput = z.input<typeof ExecutionInputSchema>;

export function parseConfig(value: unknown, name = 'config'): ResolvedConfig {
  return parseInput(ConfigSchema, value, { name });
}
