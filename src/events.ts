import { parseConfig, type ResolvedConfig } from './config.ts';
import type { FetchResult, ShardTask, VerifyResult } from './types.ts';
import { SPLITS } from './types.ts';
import { integer, object, oneOf, RUN_ID, S3_KEY, SHA256_HEX, string } from './validate.ts';

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
export interface FailureEvent {
  runId: string;
  state: string;
  error: { Error: string; Cause: string };
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

export function parseFailureEvent(event: unknown): FailureEvent {
  const e = object(event, 'event');
  const err = object(e.error, 'event.error');
  return {
    runId: string(e.runId, 'event.runId', RUN_ID),
    state: string(e.state, 'event.state'),
    error: {
      Error: typeof err.Error === 'string' ? err.Error : 'Unknown',
      Cause: typeof err.Cause === 'string' ? err.Cause : JSON.stringify(err.Cause ?? ''),
    },
  };
}
