import { createHash } from 'node:crypto';
import { type CoalesceOptions, coalesceRanges } from '../dataset/byte-ranges.ts';
import { ManifestRowSchema } from '../dataset/rows.ts';
import { packTar } from '../dataset/tar-writer.ts';
import { DataError } from '../errors.ts';
import type { PreprocessEvent } from '../events.ts';
import { preprocessImage } from '../imaging/preprocess-image.ts';
import { logger } from '../log.ts';
import { keys } from '../storage/layout.ts';
import { INTERMEDIATE, type ObjectStore } from '../storage/object-store.ts';
import type { ShardResult, ShardSample } from '../types.ts';
import { mapConcurrent } from '../util/concurrency.ts';
import { parseJsonl } from '../util/jsonl.ts';

// Preprocess, one shard: ranged GETs straight out of the tarball (offsets from the index, no
// extraction; neighbouring members share a GET), decode + resize, and one WebDataset tar (<id>.jpg + <id>.json) written with a
// single PUT, so the shard appears only when whole and a retry writes the same bytes.

/** Ranged GETs in flight at once: hides S3 latency while sharp works. */
const GET_CONCURRENCY = 3;
/** Images decoding at once per GET: keeps libuv's thread pool (4 threads) busy. */
const DECODE_CONCURRENCY = 4;
const RANGES: CoalesceOptions = { maxGapBytes: 256 * 1024, maxSpanBytes: 8 * 1024 * 1024 };

/** Bump when preprocessShard writes different bytes from the same inputs. */
export const PREPROCESS_CODE_VERSION = 1;

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** The shard's cache key: the dataset's sha256, its member list and the preprocessing. */
export function shardCacheKey(datasetSha256: string, shardList: string, resizeShorter: number): string {
  const identity = {
    code: PREPROCESS_CODE_VERSION,
    dataset: datasetSha256,
    members: sha256Hex(shardList),
    resizeShorter,
  };
  return keys.cachedShard(sha256Hex(JSON.stringify(identity)));
}

export async function preprocessShard(store: ObjectStore, event: PreprocessEvent): Promise<ShardResult> {
  const { shard, config } = event;
  const list = await store.getText(shard.listKey);
  const { sha256: datasetSha256 } = await store.getJson<{ sha256: string }>(keys.classes(event.runId));
  const cacheKey = shardCacheKey(datasetSha256, list, config.resizeShorter);
  const done = { split: shard.split, index: shard.index, key: shard.outputKey };
  const hit = config.cache ? await store.head(cacheKey) : undefined;
  if (hit?.metadata.sha256) {
    // Server-side copy: the run's shard appears whole, with the cached shard's checksum.
    await store.copy(cacheKey, shard.outputKey, {
      contentType: 'application/x-tar',
      metadata: hit.metadata,
      tags: INTERMEDIATE,
    });
    logger.info(`${shard.split} shard ${shard.index}: reused from cache`, { key: cacheKey });
    return { ...done, images: shard.count, bytes: hit.size, sha256: hit.metadata.sha256, cached: true };
  }
  const result = await buildShard(store, event, list);
  await store.put(cacheKey, result.tar, { contentType: 'application/x-tar', metadata: result.metadata });
  await store.put(shard.outputKey, result.tar, {
    contentType: 'application/x-tar',
    metadata: result.metadata,
    tags: INTERMEDIATE,
  });
  logger.info(
    `${shard.split} shard ${shard.index}: ${shard.count} images, ${(result.tar.length / 1048576).toFixed(1)} MiB`,
    { key: shard.outputKey },
  );
  return {
    ...done,
    images: shard.count,
    bytes: result.tar.length,
    sha256: result.metadata.sha256,
    cached: false,
  };
}

async function buildShard(
  store: ObjectStore,
  event: PreprocessEvent,
  list: string,
): Promise<{ tar: Buffer; metadata: { sha256: string; images: string } }> {
  const { shard, tarKey, config } = event;
  const rows = parseJsonl(list, shard.listKey, ManifestRowSchema, 'run BuildManifests again');
  if (rows.length !== shard.count) {
    throw new DataError(
      `${shard.listKey} lists ${rows.length} images, the plan says ${shard.count}: run BuildManifests again`,
    );
  }
  const samples = new Array<{ id: string; jpeg: Buffer; sample: ShardSample }>(rows.length);
  await mapConcurrent(coalesceRanges(rows, RANGES), GET_CONCURRENCY, async (group) => {
    const bytes = await store.getBytes(tarKey, { start: group.start, end: group.end });
    await mapConcurrent(group.members, DECODE_CONCURRENCY, async (i) => {
      const row = rows[i]!;
      const data = bytes.subarray(row.offset - group.start, row.offset - group.start + row.size);
      const image = await preprocessImage(data, { resizeShorter: config.resizeShorter, name: row.member });
      const sample: ShardSample = {
        id: row.id,
        label: row.label,
        class: row.class,
        width: image.width,
        height: image.height,
        sourceWidth: image.sourceWidth,
        sourceHeight: image.sourceHeight,
        member: row.member,
      };
      samples[i] = { id: row.id, jpeg: image.jpeg, sample };
    });
  });
  const tar = packTar(
    samples.flatMap((s) => [
      { name: `${s.id}.jpg`, data: s.jpeg },
      { name: `${s.id}.json`, data: Buffer.from(JSON.stringify(s.sample)) },
    ]),
  );
  return { tar, metadata: { sha256: sha256Hex(tar), images: String(rows.length) } };
}
