import type { IndexRow } from './dataset/rows.ts';
import type { ShardTask, ValidationTask } from './events.ts';

// Shapes that cross a boundary: S3 objects, state-machine payloads, CLI output.
// State payloads carry S3 keys and small numbers only (Step Functions caps them at 256 KiB).

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** Image container detected from the bytes, whatever the file name says. */
export type ImageFormat = IndexRow['format'];

// The rows of index.jsonl and the manifests are described by their schemas in dataset/rows.ts.
export type { IndexRow, ManifestRow } from './dataset/rows.ts';

/** A tar entry that is not a usable image, with the reason; listed in inventory.json. */
export interface InvalidEntry {
  member: string;
  reason: string;
}

export const PROFILE_NAMES = ['stanford-dogs', 'imagefolder'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export interface DatasetProfile {
  name: ProfileName;
  /** Exact class count required (Stanford Dogs: 120), or undefined. */
  expectedClasses?: number;
  /** Exact image count required (Stanford Dogs: 20,580), or undefined. */
  expectedImages?: number;
  /** Exact tarball size (Stanford Dogs' images.tar: 793,579,520 bytes), checked by FetchDataset. */
  tarballBytes?: number;
  minClasses: number;
  minPerClass: number;
  /** Largest tolerated share of invalid image entries (0..1) before the step fails. */
  maxInvalidShare: number;
}

/** datasets/<id>/inventory.json: written last by VerifyDataset, so its presence means a complete index. */
export interface Inventory {
  schemaVersion: 1;
  datasetId: string;
  tarKey: string;
  indexKey: string;
  sha256: string;
  tarBytes: number;
  profile: DatasetProfile;
  images: number;
  classes: number;
  perClass: Record<string, number>;
  invalid: InvalidEntry[];
  /** Accepted with a note, e.g. PNG data under a .jpg name. */
  warnings: InvalidEntry[];
  /** Files that do not claim to be images (READMEs, .DS_Store, annotations): skipped. */
  ignored: InvalidEntry[];
  verifiedAt: string;
}

export interface ShardResult {
  split: Split;
  index: number;
  key: string;
  images: number;
  bytes: number;
  sha256: string;
  /** Taken from the step cache rather than computed. */
  cached?: boolean;
}

/** Sidecar `<id>.json` inside a WebDataset shard. */
export interface ShardSample {
  id: string;
  label: number;
  class: string;
  width: number;
  height: number;
  sourceWidth: number;
  sourceHeight: number;
  member: string;
}

// ---- State machine payloads -------------------------------------------------
// Described by schemas (config.ts, events.ts); their types are re-exported here.

export type { ExecutionInput, PipelineConfig } from './config.ts';
export type { FetchResult, ShardTask, ValidationResult, ValidationTask, VerifyResult } from './events.ts';

export interface ManifestsResult {
  manifestKeys: Record<Split, string>;
  labelsKey: string;
  counts: Record<Split, number>;
  shards: ShardTask[];
  /** The Validate fan-out: one item per test shard. */
  validation: ValidationTask[];
}

export interface FailureReport {
  runId: string;
  state: string;
  error: string;
  cause: string;
  failedAt: string;
}
