import * as z from 'zod';
import { ConfigSchema, MAX_SHARD_INDEX, MAX_SHARD_SIZE } from './config.ts';
import {
  count,
  flag,
  integer,
  list,
  object,
  oneOf,
  pattern,
  runId,
  s3Key,
  seconds,
  sha256,
} from './schema/fields.ts';
import { type Naming, parseInput } from './schema/parse.ts';
import { SPLITS } from './types.ts';

// Every state's input event and the results it carries, described once; the types derive from
// the schemas. Untrusted JSON in, typed values out, and an InputError naming the field (as a
// JSON path from the event's root: `config.split`) when something is off.

export const FetchResultSchema = object({
  datasetId: pattern(/^[0-9a-f]{16}$/),
  tarKey: s3Key(),
  sha256: sha256(),
  bytes: integer(1, Number.MAX_SAFE_INTEGER),
  skipped: flag().default(false),
});
export type FetchResult = z.output<typeof FetchResultSchema>;

export const VerifyResultSchema = object({
  inventoryKey: s3Key(),
  indexKey: s3Key(),
  images: count(),
  classes: count(),
  invalid: count(),
  /** true: an inventory of the same bytes and profile was there, and the tarball was not read. */
  reused: flag().default(false),
});
export type VerifyResult = z.output<typeof VerifyResultSchema>;

/** What both fan-outs say of a shard: its number within its split and how many images it holds. */
const shardPlace = { index: integer(0, MAX_SHARD_INDEX), count: integer(1, MAX_SHARD_SIZE) };

/** One unit of the Preprocess fan-out: a slice of one split's manifest. */
export const ShardTaskSchema = object({
  split: oneOf(SPLITS),
  ...shardPlace,
  /** JSON Lines list of the ManifestRows of this shard. */
  listKey: s3Key(),
  /** Where the WebDataset tar shard goes. */
  outputKey: s3Key(),
});
export type ShardTask = z.output<typeof ShardTaskSchema>;

/** One unit of the Validate fan-out: a preprocessed test shard. */
export const ValidationTaskSchema = object({
  ...shardPlace,
  /** The preprocessed test shard (written by Preprocess). */
  shardKey: s3Key(),
  predictionsKey: s3Key(),
});
export type ValidationTask = z.output<typeof ValidationTaskSchema>;

export const ValidationResultSchema = object({
  predictionsKey: s3Key(),
  images: integer(0, MAX_SHARD_SIZE),
  correct: integer(0, MAX_SHARD_SIZE),
  seconds: seconds().default(0),
});
export type ValidationResult = z.output<typeof ValidationResultSchema>;

export const RunEventSchema = object({ runId: runId(), config: ConfigSchema });
export type RunEvent = z.output<typeof RunEventSchema>;

export const VerifyEventSchema = RunEventSchema.extend({ dataset: FetchResultSchema });
export type VerifyEvent = z.output<typeof VerifyEventSchema>;

export const ManifestsEventSchema = VerifyEventSchema.extend({ verify: VerifyResultSchema });
export type ManifestsEvent = z.output<typeof ManifestsEventSchema>;

export const PreprocessEventSchema = RunEventSchema.extend({ tarKey: s3Key(), shard: ShardTaskSchema });
export type PreprocessEvent = z.output<typeof PreprocessEventSchema>;

export const ValidateEventSchema = RunEventSchema.extend({ task: ValidationTaskSchema });
export type ValidateEvent = z.output<typeof ValidateEventSchema>;

/** A state's own time, which its handler adds to its result. */
const timed = { seconds: seconds().optional() };
const round = (s: number) => Math.round(s * 100) / 100;
const total = (items: readonly { seconds?: number }[]) => items.reduce((a, i) => a + (i.seconds ?? 0), 0);

export const WriteReportEventSchema = RunEventSchema.extend({
  dataset: FetchResultSchema.extend(timed),
  verify: VerifyResultSchema.extend(timed).optional(),
  manifests: object(timed).optional(),
  counts: object({ train: count(), val: count(), test: count() }),
  shards: list(object({ key: s3Key(), cached: flag().default(false), ...timed })).optional(),
  /** The Batch job's description (times in epoch milliseconds). */
  training: object({ startedAt: z.number().optional(), stoppedAt: z.number().optional() }).optional(),
  predictions: list(ValidationResultSchema),
}).transform(({ dataset, verify, manifests, shards, training, ...e }) => {
  const timings: Record<string, number> = {};
  const put = (state: string, s: number | undefined) => {
    if (s !== undefined) timings[state] = round(s);
  };
  put('FetchDataset', dataset.seconds);
  put('VerifyDataset', verify?.seconds);
  put('BuildManifests', manifests?.seconds);
  // Map states: the summed work of their iterations (they run in parallel).
  put('Preprocess', shards && total(shards));
  put('Validate', total(e.predictions));
  if (training?.startedAt !== undefined && training.stoppedAt !== undefined)
    put('TrainModel', (training.stoppedAt - training.startedAt) / 1000);
  const { seconds: _, ...fetched } = dataset;
  return {
    ...e,
    dataset: fetched,
    /** Seconds per state, from the state outputs that carry them. */
    timings,
    /** Preprocess's shards: which were computed and which reused from the cache. */
    shards: shards ?? [],
    /** VerifyDataset: the inventory, and whether it was reused rather than checked again. */
    verify: verify && { key: verify.inventoryKey, cached: verify.reused, seconds: verify.seconds },
  };
});
export type WriteReportEvent = z.output<typeof WriteReportEventSchema>;

const EVENT: Naming = { name: 'event', bare: true };

export const parseRunEvent = (event: unknown): RunEvent => parseInput(RunEventSchema, event, EVENT);
export const parseVerifyEvent = (event: unknown): VerifyEvent => parseInput(VerifyEventSchema, event, EVENT);
export const parseManifestsEvent = (event: unknown): ManifestsEvent =>
  parseInput(ManifestsEventSchema, event, EVENT);
export const parsePreprocessEvent = (event: unknown): PreprocessEvent =>
  parseInput(PreprocessEventSchema, event, EVENT);
export const parseValidateEvent = (event: unknown): ValidateEvent =>
  parseInput(ValidateEventSchema, event, EVENT);
export const parseWriteReportEvent = (event: unknown): WriteReportEvent =>
  parseInput(WriteReportEventSchema, event, EVENT);
