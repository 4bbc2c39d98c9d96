import { IndexRowSchema } from '../dataset/rows.ts';
import { planShards, shardRows, stratifiedSplit } from '../dataset/split.ts';
import { DataError } from '../errors.ts';
import type { ManifestsEvent } from '../events.ts';
import { logger } from '../log.ts';
import { keys } from '../storage/layout.ts';
import { INTERMEDIATE, type ObjectStore } from '../storage/object-store.ts';
import type { Inventory, ManifestsResult } from '../types.ts';
import { SPLITS } from '../types.ts';
import { parseJsonl, toJsonl } from '../util/jsonl.ts';

// BuildManifests: the verified index → seeded stratified train/val/test manifests (JSON Lines)
// and one list object per shard for the Preprocess fan-out. Same seed and index, same bytes.

export async function buildManifests(store: ObjectStore, event: ManifestsEvent): Promise<ManifestsResult> {
  const { runId, config, verify } = event;
  // The inventory is written last by VerifyDataset: without it the index is not known to be whole.
  const inventory = await store.getJson<Inventory>(verify.inventoryKey);
  if (inventory.sha256 !== event.dataset.sha256) {
    throw new DataError(
      `${verify.inventoryKey} describes a tarball with sha256 ${inventory.sha256}, not ${event.dataset.sha256}: run VerifyDataset again`,
    );
  }
  const rows = parseJsonl(
    await store.getText(verify.indexKey),
    verify.indexKey,
    IndexRowSchema,
    'run again with --no-cache so VerifyDataset rebuilds it',
  );
  if (rows.length !== inventory.images) {
    throw new DataError(
      `${verify.indexKey} has ${rows.length} rows but the inventory counts ${inventory.images} images: run again with --no-cache so VerifyDataset rebuilds it`,
    );
  }

  const { classes, splits } = stratifiedSplit(rows, { ratios: config.split, seed: config.seed });
  const shards = planShards(splits, { runId, shardSize: config.shardSize });
  const manifestKeys = {
    train: keys.manifest(runId, 'train'),
    val: keys.manifest(runId, 'val'),
    test: keys.manifest(runId, 'test'),
  };
  for (const split of SPLITS)
    await store.put(manifestKeys[split], toJsonl(splits[split]), { contentType: 'application/x-ndjson' });
  for (const shard of shards) {
    await store.put(shard.listKey, toJsonl(shardRows(splits, shard, config.shardSize)), {
      contentType: 'application/x-ndjson',
      tags: INTERMEDIATE,
    });
  }
  const labelsKey = keys.classes(runId);
  await store.putJson(labelsKey, {
    datasetId: inventory.datasetId,
    sha256: inventory.sha256,
    seed: config.seed,
    split: config.split,
    classes,
  });
  const counts = { train: splits.train.length, val: splits.val.length, test: splits.test.length };
  logger.info(
    `split ${rows.length} images of ${classes.length} classes: train ${counts.train}, val ${counts.val}, test ${counts.test}; ${shards.length} shards`,
  );
  const validation = shards
    .filter((s) => s.split === 'test')
    .map((s) => ({
      index: s.index,
      shardKey: s.outputKey,
      predictionsKey: keys.predictions(runId, s.index),
      count: s.count,
    }));
  return { manifestKeys, labelsKey, counts, shards, validation };
}
