import type { IndexRow, ManifestRow } from '../types.ts';
import { SPLITS } from '../types.ts';

// Shape checks for rows read back from S3 (index.jsonl, manifests, shard lists).

export function isIndexRow(v: unknown): v is IndexRow {
  const r = v as IndexRow;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.id === 'string' &&
    typeof r.class === 'string' &&
    typeof r.member === 'string' &&
    Number.isSafeInteger(r.offset) &&
    Number.isSafeInteger(r.size) &&
    r.size > 0 &&
    Number.isInteger(r.width) &&
    Number.isInteger(r.height)
  );
}

export function isManifestRow(v: unknown): v is ManifestRow {
  const r = v as ManifestRow;
  return isIndexRow(v) && Number.isInteger(r.label) && SPLITS.includes(r.split);
}
