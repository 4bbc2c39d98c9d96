import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { fetchDataset } from '../src/stages/fetch-dataset.ts';
import { verifyDataset } from '../src/stages/verify-dataset.ts';
import { keys } from '../src/storage/layout.ts';
import type { FetchResult, Inventory } from '../src/types.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// VerifyDataset reuses an earlier inventory of the same bytes checked the same way, without
// reading the tarball; anything else (other settings, --no-cache, a foreign or damaged
// inventory, a missing index) verifies again.

let t: TestS3;
let dir: string;
let dataset: FetchResult;

/** One verification, and whether it read the tarball (also when it then rejected the data). */
async function attempt(config: Record<string, unknown>) {
  const tarReads = vi.spyOn(t.store, 'getStream');
  const outcome = await verifyDataset(t.store, {
    runId: 'verify-reuse',
    config: parseConfig({ source: 's3://test-bucket/x.tar', ...config }),
    dataset,
  }).then(
    (result) => ({ result }),
    (error: unknown) => ({ error }),
  );
  const readTar = tarReads.mock.calls.some(([key]) => key === dataset.tarKey);
  tarReads.mockRestore();
  return { ...outcome, readTar };
}

async function verify(config: Record<string, unknown> = {}) {
  const a = await attempt(config);
  if ('error' in a) throw a.error;
  return { result: a.result, readTar: a.readTar };
}

beforeAll(async () => {
  t = await startTestS3();
  dir = await mkdtemp(join(tmpdir(), 'dogbreed-verify-'));
  const tar = join(dir, 'sample.tar');
  await writeSampleTarball(tar, { classes: 3, perClass: 4, seed: 5 });
  dataset = await fetchDataset(t.store, { source: tar });
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await t.store.delete(keys.datasetInventory(dataset.datasetId)).catch(() => undefined);
  await t.store.delete(keys.datasetIndex(dataset.datasetId)).catch(() => undefined);
});

describe('VerifyDataset reuse', () => {
  it('a second verification of the same bytes and settings reuses the inventory without reading the tarball', async () => {
    const first = await verify();
    expect(first.readTar).toBe(true);
    expect(first.result.reused).toBe(false);
    const second = await verify();
    expect(second.readTar).toBe(false);
    expect(second.result).toEqual({ ...first.result, reused: true });
  });

  it.each([
    ['another profile', { profile: 'stanford-dogs' }],
    ['another --max-invalid-share', { maxInvalidShare: 0.5 }],
    ['another --min-per-class', { minPerClass: 2 }],
    ['--no-cache', { cache: false }],
  ])('%s verifies again', async (_, config) => {
    await verify();
    // stanford-dogs may reject the synthetic sample's layout: what matters is that it read the tar.
    const again = await attempt(config);
    expect(again.readTar).toBe(true);
    if ('result' in again) expect(again.result.reused).toBe(false);
  });

  it('an inventory of other bytes verifies again, and is replaced', async () => {
    await verify();
    const key = keys.datasetInventory(dataset.datasetId);
    const inv = await t.store.getJson<Inventory>(key);
    await t.store.putJson(key, { ...inv, sha256: 'f'.repeat(64) });
    const again = await verify();
    expect(again.readTar).toBe(true);
    expect(again.result.reused).toBe(false);
    expect((await t.store.getJson<Inventory>(key)).sha256).toBe(dataset.sha256);
  });

  it('a damaged inventory, or one without its index, verifies again', async () => {
    await verify();
    await t.store.put(keys.datasetInventory(dataset.datasetId), '{"schemaVersion": 1, "sha2');
    expect((await verify()).readTar).toBe(true);
    await t.store.delete(keys.datasetIndex(dataset.datasetId));
    const again = await verify();
    expect(again.readTar).toBe(true);
    expect(again.result.reused).toBe(false);
    expect((await verify()).result.reused).toBe(true);
  });
});
