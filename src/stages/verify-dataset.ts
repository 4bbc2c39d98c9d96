import { createHash } from 'node:crypto';
import { DatasetIndexer } from '../dataset/indexer.ts';
import { resolveProfile } from '../dataset/profiles.ts';
import { readTar } from '../dataset/tar-reader.ts';
import { DataError } from '../errors.ts';
import type { VerifyEvent } from '../events.ts';
import { logger } from '../log.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { Inventory, VerifyResult } from '../types.ts';
import { toJsonl } from '../util/jsonl.ts';
import { keys } from './keys.ts';

// VerifyDataset: one streaming pass over images.tar in S3 that checks the checksum and the tar
// structure and indexes every image (class, byte offset, size, dimensions). index.jsonl is
// written first and inventory.json last: a present inventory means a complete, checked index.

const PROGRESS_EVERY_BYTES = 128 * 1024 * 1024;

export async function verifyDataset(store: ObjectStore, event: VerifyEvent): Promise<VerifyResult> {
  const { dataset, config } = event;
  const profile = resolveProfile(config.profile, {
    minPerClass: config.minPerClass,
    maxInvalidShare: config.maxInvalidShare,
  });
  const hash = createHash('sha256');
  let bytes = 0;
  let nextLog = PROGRESS_EVERY_BYTES;
  const body = await store.getStream(dataset.tarKey);
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      if (bytes >= nextLog) {
        logger.info(
          `verified ${(bytes / 1048576).toFixed(0)} of ${(dataset.bytes / 1048576).toFixed(0)} MiB`,
        );
        nextLog += PROGRESS_EVERY_BYTES;
      }
      yield chunk as Buffer;
    }
  }
  const indexer = new DatasetIndexer();
  try {
    for await (const entry of readTar(hashed())) indexer.add(entry);
  } catch (err) {
    if (err instanceof DataError) throw new DataError(`${dataset.tarKey}: ${err.message}`);
    throw err;
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== dataset.sha256 || bytes !== dataset.bytes) {
    throw new DataError(
      `${dataset.tarKey} has sha256 ${sha256} (${bytes} bytes) but FetchDataset stored ${dataset.sha256} (${dataset.bytes} bytes): the object changed or is damaged; fetch the dataset again`,
    );
  }
  const index = indexer.finish(profile);
  const indexKey = keys.datasetIndex(dataset.datasetId);
  const inventoryKey = keys.datasetInventory(dataset.datasetId);
  await store.put(indexKey, toJsonl(index.rows), { contentType: 'application/x-ndjson' });
  const inventory: Inventory = {
    schemaVersion: 1,
    datasetId: dataset.datasetId,
    tarKey: dataset.tarKey,
    indexKey,
    sha256,
    tarBytes: bytes,
    profile,
    images: index.images,
    classes: index.classes,
    perClass: index.perClass,
    invalid: index.invalid,
    warnings: index.warnings,
    ignored: index.ignored,
    verifiedAt: new Date().toISOString(),
  };
  await store.putJson(inventoryKey, inventory);
  for (const w of index.warnings.slice(0, 5)) logger.warn(`${w.member}: ${w.reason}`);
  if (index.invalid.length > 0) {
    logger.warn(
      `${index.invalid.length} invalid entries excluded (listed in ${inventoryKey}): ${index.invalid
        .slice(0, 3)
        .map((e) => `${e.member} (${e.reason})`)
        .join('; ')}`,
    );
  }
  if (index.ignored.length > 0) {
    logger.info(
      `${index.ignored.length} files that are not images skipped (listed in ${inventoryKey}), e.g. ${index.ignored[0]!.member}`,
    );
  }
  logger.info(`${index.images} images in ${index.classes} classes indexed`, { key: indexKey });
  return {
    inventoryKey,
    indexKey,
    images: index.images,
    classes: index.classes,
    invalid: index.invalid.length,
  };
}
