import { createHash } from 'node:crypto';
import { DatasetIndexer } from '../dataset/indexer.ts';
import { resolveProfile } from '../dataset/profiles.ts';
import { readTar } from '../dataset/tar-reader.ts';
import { DataError, NotFoundError } from '../errors.ts';
import type { VerifyEvent } from '../events.ts';
import { logger } from '../log.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { DatasetProfile, Inventory, VerifyResult } from '../types.ts';
import { toJsonl } from '../util/jsonl.ts';

// VerifyDataset: one streaming pass over images.tar in S3 that checks the checksum and the tar
// structure and indexes every image (class, byte offset, size, dimensions). index.jsonl is
// written first and inventory.json last: a present inventory means a complete, checked index.
// Datasets are content-addressed, so an inventory of the same bytes checked with the same
// profile is this stage's result: a rerun reuses it without reading the tarball again.

const PROGRESS_EVERY_BYTES = 128 * 1024 * 1024;

export async function verifyDataset(store: ObjectStore, event: VerifyEvent): Promise<VerifyResult> {
  const { dataset, config } = event;
  const profile = resolveProfile(config.profile, {
    minPerClass: config.minPerClass,
    maxInvalidShare: config.maxInvalidShare,
  });
  const indexKey = keys.datasetIndex(dataset.datasetId);
  const inventoryKey = keys.datasetInventory(dataset.datasetId);
  const reusable = config.cache ? await reusableInventory(store, event, profile) : undefined;
  if (reusable) {
    logger.info(
      `${dataset.tarKey}: verification reused from ${inventoryKey} (same sha256 and profile, checked ${reusable.verifiedAt}); --no-cache verifies again`,
    );
    return resultOf(reusable, true);
  }
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
  return resultOf(inventory, false);
}

function resultOf(inventory: Inventory, reused: boolean): VerifyResult {
  return {
    inventoryKey: keys.datasetInventory(inventory.datasetId),
    indexKey: inventory.indexKey,
    images: inventory.images,
    classes: inventory.classes,
    invalid: inventory.invalid.length,
    reused,
  };
}

/**
 * The stored inventory when it describes exactly these bytes checked exactly this way, and its
 * index is there; else undefined (verify again). A damaged or foreign inventory is not an error
 * here: the full pass below rebuilds both objects.
 */
async function reusableInventory(
  store: ObjectStore,
  { dataset }: VerifyEvent,
  profile: DatasetProfile,
): Promise<Inventory | undefined> {
  const inventoryKey = keys.datasetInventory(dataset.datasetId);
  const indexKey = keys.datasetIndex(dataset.datasetId);
  let inv: Partial<Inventory>;
  try {
    inv = await store.getJson<Partial<Inventory>>(inventoryKey);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    if (!(err instanceof DataError)) throw err;
    logger.warn(`${inventoryKey} is not readable (${err.message}): verifying the dataset again`);
    return undefined;
  }
  const same =
    inv !== null &&
    typeof inv === 'object' &&
    inv.schemaVersion === 1 &&
    inv.datasetId === dataset.datasetId &&
    inv.tarKey === dataset.tarKey &&
    inv.indexKey === indexKey &&
    inv.sha256 === dataset.sha256 &&
    inv.tarBytes === dataset.bytes &&
    canonical(inv.profile) === canonical(profile) &&
    Number.isSafeInteger(inv.images) &&
    Number.isSafeInteger(inv.classes) &&
    Array.isArray(inv.invalid);
  if (!same) {
    logger.info(`${inventoryKey} records another tarball or profile: verifying the dataset again`);
    return undefined;
  }
  if (!(await store.head(indexKey))) {
    logger.warn(`${inventoryKey} is there but ${indexKey} is not: verifying the dataset again`);
    return undefined;
  }
  return inv as Inventory;
}

/** JSON with sorted keys: equal settings compare equal whatever order they were written in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'undefined';
}
