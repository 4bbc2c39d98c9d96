import { createHash } from 'node:crypto';
import { type CoalesceOptions, coalesceRanges } from '../dataset/byte-ranges.ts';
import { isManifestRow } from '../dataset/rows.ts';
import { packTar } from '../dataset/tar-writer.ts';
import { DataError } from '../errors.ts';
import type { PreprocessEvent } from '../events.ts';
import { preprocessImage } from '../imaging/preprocess-image.ts';
import { logger } from '../log.ts';
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

export async function preprocessShard(store: ObjectStore, event: PreprocessEvent): Promise<ShardResult> {
  const { shard, tarKey, config } = event;
  const rows = parseJsonl(await store.getText(shard.listKey), shard.listKey, isManifestRow);
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
  const sha256 = createHash('sha256').update(tar).digest('hex');
  await store.put(shard.outputKey, tar, {
    contentType: 'application/x-tar',
    metadata: { sha256, images: String(rows.length) },
    tags: INTERMEDIATE,
  });
  logger.info(
    `${shard.split} shard ${shard.index}: ${rows.length} images, ${(tar.length / 1048576).toFixed(1)} MiB`,
    {
      key: shard.outputKey,
    },
  );
  return {
    split: shard.split,
    index: shard.index,
    key: shard.outputKey,
    images: rows.length,
    bytes: tar.length,
    sha256,
  };
}
