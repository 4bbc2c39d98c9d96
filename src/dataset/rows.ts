import type * as z from 'zod';
import { count, integer, object, oneOf, text } from '../schema/fields.ts';
import { SPLITS } from '../types.ts';

// The rows read back from S3 (index.jsonl, manifests, shard lists), described once: the types in
// types.ts are derived from these, and parseJsonl checks every row against them.

export const IMAGE_FORMATS = ['jpeg', 'png', 'webp'] as const;

export const IndexRowSchema = object({
  /** Stable image id: the member's file name without extension, made unique within the dataset. */
  id: text(),
  /** Class folder name, e.g. `n02085620-Chihuahua`. */
  class: text(),
  /** Tar member path as stored in the archive. */
  member: text(),
  /** Byte offset of the member's data inside the tarball (for ranged GETs). */
  offset: count(),
  /** Data size in bytes. */
  size: integer(1, Number.MAX_SAFE_INTEGER),
  width: count(),
  height: count(),
  /** Image container detected from the bytes, whatever the file name says. */
  format: oneOf(IMAGE_FORMATS),
});

export const ManifestRowSchema = IndexRowSchema.extend({
  split: oneOf(SPLITS),
  /** Class index in the sorted class list (labels.json order). */
  label: count(),
});

/** One row of datasets/<id>/index.jsonl: a valid image inside images.tar. */
export type IndexRow = z.output<typeof IndexRowSchema>;
/** One row of runs/<runId>/manifests/<split>.jsonl and of a shard's list. */
export type ManifestRow = z.output<typeof ManifestRowSchema>;
