import { InputError } from './errors.ts';
import { parseGate } from './metrics/gate.ts';
import type { GateThresholds } from './metrics/types.ts';
import { parseTrainingConfig, type TrainingConfig } from './training/training-config.ts';
import type { DatasetProfile, PipelineConfig } from './types.ts';
import { array, boolean, integer, number, object, oneOf, optional, SHA256_HEX, string } from './validate.ts';

// The run configuration: what the execution input may say, with the defaults every
// handler applies, so an execution started from the AWS console with only a source works.

export interface ResolvedConfig {
  source: string;
  expectedSha256?: string;
  profile: DatasetProfile['name'];
  minPerClass?: number;
  maxInvalidShare?: number;
  seed: number;
  split: [number, number, number];
  shardSize: number;
  resizeShorter: number;
  cache: boolean;
  training: TrainingConfig;
  gate: GateThresholds;
}

export const DEFAULTS = {
  profile: 'imagefolder',
  seed: 1,
  split: [0.7, 0.15, 0.15],
  shardSize: 256,
  resizeShorter: 256,
} as const;

export function parseConfig(value: unknown, path = 'config'): ResolvedConfig {
  const c = object(value, path) as Record<keyof PipelineConfig, unknown>;
  const split = optional(c.split, (v) => {
    const parts = array(v, `${path}.split`);
    if (parts.length !== 3)
      throw new InputError(`${path}.split must list 3 ratios (train, val, test), got ${parts.length}`);
    return parts.map((x, i) => number(x, `${path}.split[${i}]`, 0, 1)) as [number, number, number];
  });
  return {
    source: string(c.source, `${path}.source`),
    expectedSha256: optional(c.expectedSha256, (v) =>
      string(typeof v === 'string' ? v.toLowerCase() : v, `${path}.expectedSha256`, SHA256_HEX),
    ),
    profile:
      optional(c.profile, (v) => oneOf(v, `${path}.profile`, ['stanford-dogs', 'imagefolder'] as const)) ??
      DEFAULTS.profile,
    minPerClass: optional(c.minPerClass, (v) => integer(v, `${path}.minPerClass`, 1, 1_000_000)),
    maxInvalidShare: optional(c.maxInvalidShare, (v) => number(v, `${path}.maxInvalidShare`, 0, 1)),
    seed: optional(c.seed, (v) => integer(v, `${path}.seed`, 0, 2 ** 32 - 1)) ?? DEFAULTS.seed,
    split: split ?? [...DEFAULTS.split],
    shardSize:
      optional(c.shardSize, (v) => integer(v, `${path}.shardSize`, 1, 100_000)) ?? DEFAULTS.shardSize,
    resizeShorter:
      optional(c.resizeShorter, (v) => integer(v, `${path}.resizeShorter`, 32, 2048)) ??
      DEFAULTS.resizeShorter,
    cache: optional(c.cache, (v) => boolean(v, `${path}.cache`)) ?? true,
    // Checked here too, so a bad training option fails the run at its start, not after preprocessing.
    training: parseTrainingConfig(c.training, `${path}.training`),
    gate: parseGate(c.gate),
  };
}
