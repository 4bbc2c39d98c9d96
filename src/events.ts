import { parseConfig, type ResolvedConfig } from './config.ts';
import type {
  FetchResult,
  ShardTask,
  Split,
  ValidationResult,
  ValidationTask,
  VerifyResult,
} from './types.ts';
import { SPLITS } from './types.ts';
import { array, integer, object, oneOf, RUN_ID, S3_KEY, SHA256_HEX, string } from './validate.ts';

// Parsers for every state's input event: untrusted JSON in, typed values out, and an
// InputError naming the field when something is off.

export interface RunEvent {
  runId: string;
  config: ResolvedConfig;
}
export interface VerifyEvent extends RunEvent {
  dataset: FetchResult;
}
export interface ManifestsEvent extends VerifyEvent {
  verify: VerifyResult;
}
export interface PreprocessEvent extends RunEvent {
  tarKey: string;
  shard: ShardTask;
}
export interface ValidateEvent extends RunEvent {
  task: ValidationTask;
}

export interface WriteReportEvent extends RunEvent {
  dataset: FetchResult;
  counts: Record<Split, number>;
  predictions: ValidationResult[];
  /** Seconds per state, from the state outputs that carry them. */
  timings: Record<string, number>;
  /** Preprocess's shards: which were computed and which reused from the cache. */
  shards: { key: string; cached: boolean; seconds?: number }[];
  /** VerifyDataset: the inventory, and whether it was reused rather than checked again. */
  verify?: { key: string; cached: boolean; seconds?: number };
}

export function parseRunEvent(event: unknown): RunEvent {
  const e = object(event, 'event');
  return { runId: string(e.runId, 'event.runId', RUN_ID), config: parseConfig(e.config, 'event.config') };
}

function parseDataset(v: unknown): FetchResult {
  const d = object(v, 'event.dataset');
  return {
    datasetId: string(d.datasetId, 'event.dataset.datasetId', /^[0-9a-f]{16}$/),
    tarKey: string(d.tarKey, 'event.dataset.tarKey', S3_KEY),
    sha256: string(d.sha256, 'event.dataset.sha256', SHA256_HEX),
    bytes: integer(d.bytes, 'event.dataset.bytes', 1, Number.MAX_SAFE_INTEGER),
    skipped: d.skipped === true,
  };
}

export function parseVerifyEvent(event: unknown): VerifyEvent {
  return { ...parseRunEvent(event), dataset: parseDataset(object(event, 'event').dataset) };
}

export function parseManifestsEvent(event: unknown): ManifestsEvent {
  const v = object(object(event, 'event').verify, 'event.verify');
  return {
    ...parseVerifyEvent(event),
    verify: {
      inventoryKey: string(v.inventoryKey, 'event.verify.inventoryKey', S3_KEY),
      indexKey: string(v.indexKey, 'event.verify.indexKey', S3_KEY),
      images: integer(v.images, 'event.verify.images', 0, Number.MAX_SAFE_INTEGER),
      classes: integer(v.classes, 'event.verify.classes', 0, Number.MAX_SAFE_INTEGER),
      invalid: integer(v.invalid, 'event.verify.invalid', 0, Number.MAX_SAFE_INTEGER),
      reused: v.reused === true,
    },
  };
}

export function parsePreprocessEvent(event: unknown): PreprocessEvent {
  const e = object(event, 'event');
  const s = object(e.shard, 'event.shard');
  return {
    ...parseRunEvent(event),
    tarKey: string(e.tarKey, 'event.tarKey', S3_KEY),
    shard: {
      split: oneOf(s.split, 'event.shard.split', SPLITS),
      index: integer(s.index, 'event.shard.index', 0, 99_999),
      listKey: string(s.listKey, 'event.shard.listKey', S3_KEY),
      outputKey: string(s.outputKey, 'event.shard.outputKey', S3_KEY),
      count: integer(s.count, 'event.shard.count', 1, 100_000),
    },
  };
}

function parseTask(v: unknown): ValidationTask {
  const t = object(v, 'event.task');
  return {
    index: integer(t.index, 'event.task.index', 0, 99_999),
    shardKey: string(t.shardKey, 'event.task.shardKey', S3_KEY),
    predictionsKey: string(t.predictionsKey, 'event.task.predictionsKey', S3_KEY),
    count: integer(t.count, 'event.task.count', 1, 100_000),
  };
}

export function parseValidateEvent(event: unknown): ValidateEvent {
  return { ...parseRunEvent(event), task: parseTask(object(event, 'event').task) };
}

function parseVerifyUse(v: unknown): WriteReportEvent['verify'] {
  if (v === undefined) return undefined;
  const r = object(v, 'event.verify');
  return {
    key: string(r.inventoryKey, 'event.verify.inventoryKey', S3_KEY),
    cached: r.reused === true,
    seconds: seconds(r.seconds),
  };
}

const seconds = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);

/** Seconds per state from the outputs that carry them (Lambda results, Map results, the Batch job). */
function stateTimings(e: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (name: string, v: number | undefined) => {
    if (v !== undefined) out[name] = Math.round(v * 100) / 100;
  };
  put('FetchDataset', seconds((e.dataset as { seconds?: unknown } | undefined)?.seconds));
  put('VerifyDataset', seconds((e.verify as { seconds?: unknown } | undefined)?.seconds));
  put('BuildManifests', seconds((e.manifests as { seconds?: unknown } | undefined)?.seconds));
  const sum = (items: unknown) =>
    Array.isArray(items)
      ? items.reduce<number>((a, i) => a + (seconds((i as { seconds?: unknown }).seconds) ?? 0), 0)
      : undefined;
  // Map states: the summed work of their iterations (they run in parallel).
  put('Preprocess', sum(e.shards));
  put('Validate', sum(e.predictions));
  const job = e.training as { startedAt?: unknown; stoppedAt?: unknown } | undefined;
  if (typeof job?.startedAt === 'number' && typeof job.stoppedAt === 'number') {
    put('TrainModel', (job.stoppedAt - job.startedAt) / 1000);
  }
  return out;
}

export function parseWriteReportEvent(event: unknown): WriteReportEvent {
  const e = object(event, 'event');
  const counts = object(e.counts, 'event.counts');
  return {
    ...parseRunEvent(event),
    dataset: parseDataset(e.dataset),
    counts: {
      train: integer(counts.train, 'event.counts.train', 0, Number.MAX_SAFE_INTEGER),
      val: integer(counts.val, 'event.counts.val', 0, Number.MAX_SAFE_INTEGER),
      test: integer(counts.test, 'event.counts.test', 0, Number.MAX_SAFE_INTEGER),
    },
    predictions: array(e.predictions, 'event.predictions').map((p, i) => {
      const r = object(p, `event.predictions[${i}]`);
      return {
        predictionsKey: string(r.predictionsKey, `event.predictions[${i}].predictionsKey`, S3_KEY),
        images: integer(r.images, `event.predictions[${i}].images`, 0, 100_000),
        correct: integer(r.correct, `event.predictions[${i}].correct`, 0, 100_000),
        seconds: seconds(r.seconds) ?? 0,
      };
    }),
    timings: stateTimings(e),
    verify: parseVerifyUse(e.verify),
    shards: (Array.isArray(e.shards) ? e.shards : []).map((s, i) => {
      const r = object(s, `event.shards[${i}]`);
      return {
        key: string(r.key, `event.shards[${i}].key`, S3_KEY),
        cached: r.cached === true,
        seconds: seconds(r.seconds),
      };
    }),
  };
}
