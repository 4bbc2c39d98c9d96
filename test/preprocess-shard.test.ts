import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler } from '../functions/preprocess-shard.ts';
import { DataError } from '../src/errors.ts';
import { useLocalS3 } from '../src/local/pipeline.ts';
import { keys } from '../src/storage/layout.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// A damaged shard list in the real local S3, through the PreprocessShard handler: what crosses
// the state boundary is a DataError (the error type Step Functions sees) naming the object and
// the line, and saying which state to run again.

const runId = 'corrupt-list';
const listKey = 'runs/corrupt-list/manifests/shards/train/shard-00000.jsonl';
const row = {
  id: 'n02085620-Chihuahua/a',
  class: 'n02085620-Chihuahua',
  member: 'Images/n02085620-Chihuahua/a.jpg',
  offset: 512,
  size: 100,
  width: 10,
  height: 10,
  format: 'jpeg',
  label: 0,
  split: 'train',
};

let t: TestS3;
let restore: () => void;
beforeAll(async () => {
  t = await startTestS3();
  restore = useLocalS3(t.s3.endpoint, t.store.bucket);
  await t.store.putJson(keys.classes(runId), { sha256: 'a'.repeat(64), classes: [row.class] });
});
afterAll(async () => {
  restore();
  await t.close();
});

const event = {
  runId,
  config: { source: 's3://elsewhere/images.tar', cache: false },
  tarKey: 'datasets/0123456789abcdef/images.tar',
  shard: { split: 'train', index: 0, listKey, outputKey: keys.shard(runId, 'train', 0), count: 3 },
};

describe('PreprocessShard with a damaged shard list', () => {
  it.each([
    [
      'a line that is not JSON',
      `${JSON.stringify(row)}\n\n{"id": "n02085620-Chihuahua/b",\n`,
      3,
      'not valid JSON',
    ],
    [
      'a row of the wrong shape',
      `${JSON.stringify(row)}\n${JSON.stringify({ ...row, size: 'big' })}\n`,
      2,
      'size must be an integer from 1 to 9007199254740991, got "big"',
    ],
  ])('%s: a DataError naming the key and line', async (_, list, line, what) => {
    await t.store.put(listKey, list);
    const err = await handler(event, {} as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).name).toBe('DataError');
    expect((err as Error).message).toBe(`${listKey} line ${line}: ${what}: run BuildManifests again`);
    expect(await t.keys('runs/corrupt-list/shards/')).toEqual([]);
  });
});
