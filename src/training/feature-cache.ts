import { createHash } from 'node:crypto';
import { logger } from '../log.ts';
import { RowTable } from '../model/batch-model.ts';
import type { PreprocessSpec } from '../model/types.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { ShardFeatures } from './features.ts';

// The feature cache: one object per (shard, backbone, preprocessing, views, seed), named by
// the hash of exactly those, so any change to one of them misses. The object is compact and
// streamable: a fixed header, then float32 rows, then int32 labels, little-endian. It is
// written with one PUT (whole or absent) and read back only when its length and its sha256
// match what its header and metadata say.

/** Bump when features.ts computes different numbers from the same inputs. */
export const FEATURE_CODE_VERSION = 1;

const MAGIC = 'DBFEAT01';
/** magic, then rows, dim, images, shorterSide (0: none) as uint32. */
const HEADER_BYTES = MAGIC.length + 16;

export interface FeatureKeyParts {
  /** sha256 of the shard's bytes (Preprocess records it in the shard's metadata). */
  shardSha256: string;
  backboneSha256: string;
  featureTensor: string;
  spec: PreprocessSpec;
  views: number;
  seed: number;
  /** onnxruntime may round differently at another batch size. */
  batchSize: number;
}

export function featureCacheKey(p: FeatureKeyParts): string {
  const identity = {
    code: FEATURE_CODE_VERSION,
    shard: p.shardSha256,
    backbone: p.backboneSha256,
    featureTensor: p.featureTensor,
    spec: [
      p.spec.resizeShorter,
      p.spec.cropSize,
      p.spec.mean,
      p.spec.std,
      p.spec.layout,
      p.spec.channelOrder,
    ],
    views: p.views,
    seed: p.seed,
    batchSize: p.batchSize,
  };
  return keys.cachedFeatures(createHash('sha256').update(JSON.stringify(identity)).digest('hex'));
}

export function encodeFeatures(f: ShardFeatures): Buffer {
  const { rows, dim } = f.table;
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(rows, 8);
  header.writeUInt32LE(dim, 12);
  header.writeUInt32LE(f.images, 16);
  header.writeUInt32LE(f.shorterSide ?? 0, 20);
  const features = f.table.features;
  const labels = f.table.labels;
  return Buffer.concat([
    header,
    Buffer.from(features.buffer, features.byteOffset, features.byteLength),
    Buffer.from(labels.buffer, labels.byteOffset, labels.byteLength),
  ]);
}

export async function writeCachedFeatures(store: ObjectStore, key: string, f: ShardFeatures): Promise<void> {
  const body = encodeFeatures(f);
  await store.put(key, body, {
    contentType: 'application/octet-stream',
    metadata: { sha256: createHash('sha256').update(body).digest('hex'), rows: String(f.table.rows) },
  });
}

/**
 * The cached features, streamed in; undefined when there are none, or when the object is not
 * whole (wrong length or checksum: a leftover of an interrupted write is recomputed, never used).
 */
export async function readCachedFeatures(
  store: ObjectStore,
  key: string,
  dim: number,
): Promise<ShardFeatures | undefined> {
  const found = await store.getIfExists(key);
  if (!found) return undefined;
  const { body: stream, metadata } = found;
  const hash = createHash('sha256');
  const header = Buffer.alloc(HEADER_BYTES);
  let body: Uint8Array<ArrayBuffer> | undefined;
  let filled = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    let at = 0;
    if (filled < HEADER_BYTES) {
      at = chunk.copy(header, filled, 0, Math.min(chunk.length, HEADER_BYTES - filled));
      filled += at;
      if (filled < HEADER_BYTES) continue;
      if (header.toString('latin1', 0, MAGIC.length) !== MAGIC || header.readUInt32LE(12) !== dim) {
        stream.destroy();
        return unusable(key, `not a ${dim}-d feature object`);
      }
      // Its own buffer from offset 0, so the rows and labels are typed-array views of it, not copies.
      body = new Uint8Array(header.readUInt32LE(8) * (dim + 1) * 4);
    }
    if (!body || filled - HEADER_BYTES + chunk.length - at > body.length) {
      stream.destroy();
      return unusable(key, 'longer than its header says');
    }
    body.set(at === 0 ? chunk : chunk.subarray(at), filled - HEADER_BYTES);
    filled += chunk.length - at;
  }
  const digest = hash.digest('hex');
  if (!body || filled - HEADER_BYTES !== body.length) return unusable(key, 'shorter than its header says');
  if (metadata.sha256 !== digest) return unusable(key, 'its checksum does not match');
  const rows = header.readUInt32LE(8);
  const table = RowTable.over(
    dim,
    new Float32Array(body.buffer, 0, rows * dim),
    new Int32Array(body.buffer, rows * dim * 4, rows),
  );
  const shorterSide = header.readUInt32LE(20);
  return { table, images: header.readUInt32LE(16), shorterSide: shorterSide || undefined };
}

function unusable(key: string, why: string): undefined {
  logger.warn(`feature cache ${key} is not usable (${why}): computing the features again`);
  return undefined;
}
