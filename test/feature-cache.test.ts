import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RowTable } from '../src/model/batch-model.ts';
import { encodeFeatures, readCachedFeatures, writeCachedFeatures } from '../src/training/feature-cache.ts';
import type { ShardFeatures } from '../src/training/features.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// The feature cache's object format, and that a cache object that is not whole is never used.

let t: TestS3;
beforeAll(async () => {
  t = await startTestS3();
});
afterAll(() => t.close());

function sample(rows: number, dim: number): ShardFeatures {
  const table = new RowTable(dim);
  table.push(
    Float32Array.from({ length: rows * dim }, (_, i) => Math.sin(i) * 1e3),
    Int32Array.from({ length: rows }, (_, i) => i % 7),
  );
  return { table, images: rows, shorterSide: 64 };
}

describe('feature cache objects', () => {
  it('round-trip exactly: header + float32 rows + int32 labels, 4 bytes a number', async () => {
    const f = sample(300, 27);
    expect(encodeFeatures(f).length).toBe(24 + 300 * 27 * 4 + 300 * 4);
    await writeCachedFeatures(t.store, 'cache/features/a.f32', f);
    const back = await readCachedFeatures(t.store, 'cache/features/a.f32', 27);
    expect(back?.images).toBe(300);
    expect(back?.shorterSide).toBe(64);
    expect(Buffer.from(back!.table.features.buffer, 0, 300 * 27 * 4)).toEqual(
      Buffer.from(f.table.features.buffer, 0, 300 * 27 * 4),
    );
    expect([...back!.table.labels]).toEqual([...f.table.labels]);
  });

  it('a missing, truncated, padded or foreign object reads as no cache entry', async () => {
    expect(await readCachedFeatures(t.store, 'cache/features/none.f32', 27)).toBeUndefined();
    const body = encodeFeatures(sample(50, 27));
    await writeCachedFeatures(t.store, 'cache/features/b.f32', sample(50, 27));
    const { sha256 } = (await t.store.head('cache/features/b.f32'))!.metadata;
    const cases: [string, Buffer][] = [
      ['truncated', body.subarray(0, body.length - 100)],
      ['padded', Buffer.concat([body, Buffer.alloc(8)])],
      ['corrupt', Buffer.concat([body.subarray(0, 40), Buffer.alloc(4, 255), body.subarray(44)])],
    ];
    for (const [name, bytes] of cases) {
      await t.store.put(`cache/features/${name}.f32`, bytes, { metadata: { sha256: sha256! } });
      expect(await readCachedFeatures(t.store, `cache/features/${name}.f32`, 27), name).toBeUndefined();
    }
    expect(await readCachedFeatures(t.store, 'cache/features/b.f32', 28)).toBeUndefined();
  });

  it('the local S3 server leaves no partial files behind a finished write', async () => {
    await t.store.put('x/y.bin', Buffer.alloc(1 << 20, 1));
    await t.store.copy('x/y.bin', 'x/z.bin');
    const files = await readdir(`${t.dir}/test-bucket/x`);
    expect(files.filter((f) => f.includes('.partial-'))).toEqual([]);
    expect((await t.store.getBytes('x/z.bin')).length).toBe(1 << 20);
  });
});
