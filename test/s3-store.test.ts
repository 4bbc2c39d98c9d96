import { readFile, rm } from 'node:fs/promises';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RecordedCall } from '../src/storage/call-log.ts';
import { INTERMEDIATE } from '../src/storage/object-store.ts';
import { S3ObjectStore } from '../src/storage/s3-store.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// The call log is read when src/storage/call-log.ts loads: set before any import runs.
const CALL_LOG = vi.hoisted(() => {
  const file = `${process.env.TMPDIR ?? '/tmp'}/dogbreed-s3-store-calls-${process.pid}.jsonl`;
  process.env.DOGBREED_AWS_CALL_LOG = file;
  return file;
});

// The request shape only AWS acts on: s3rver stores no object tags, so the tag header that the
// bucket's lifecycle rule keys on is checked on the request itself. Mocks stand on their own
// client, so the real local S3 below is spoken to for real.

const client = new S3Client({ region: 'us-east-1' });
const s3 = mockClient(client);
afterEach(() => s3.reset());

describe('S3ObjectStore tags', () => {
  it('sends intermediate objects with the lifecycle tag, and plain objects without one', async () => {
    s3.on(PutObjectCommand).resolves({});
    const store = new S3ObjectStore(client, 'b');
    await store.put('runs/r/shards/train/shard-00000.tar', 'x', { tags: INTERMEDIATE });
    await store.putJson('reports/r/metrics.json', {});
    const [tagged, plain] = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(tagged?.Tagging).toBe('dogbreed-retention=intermediate');
    expect(plain?.Tagging).toBeUndefined();
  });
});

describe('S3ObjectStore.head under prefix-limited IAM', () => {
  const forbidden = () =>
    new S3ServiceException({
      name: 'Forbidden',
      $fault: 'client',
      $metadata: { httpStatusCode: 403 },
      message: 'Forbidden',
    });

  it('takes a 403 for a key that a listing does not show as missing', async () => {
    s3.on(HeadObjectCommand).rejects(forbidden());
    s3.on(ListObjectsV2Command, { Prefix: 'models/current.json' }).resolves({ Contents: [] });
    const store = new S3ObjectStore(client, 'b');
    expect(await store.head('models/current.json')).toBeUndefined();
  });

  it('reports a 403 on a key that exists as the permission problem it is', async () => {
    s3.on(HeadObjectCommand).rejects(forbidden());
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'models/current.json' }] });
    const store = new S3ObjectStore(client, 'b');
    await expect(store.head('models/current.json')).rejects.toThrow(
      /S3 Forbidden on s3:\/\/b\/models\/current\.json/,
    );
  });

  it('getIfExists: a 403 on a key a listing does not show is absence; on one it shows, the error', async () => {
    s3.on(GetObjectCommand).rejects(forbidden());
    s3.on(ListObjectsV2Command, { Prefix: 'models/current.json' }).resolves({ Contents: [] });
    const store = new S3ObjectStore(client, 'b');
    expect(await store.getIfExists('models/current.json')).toBeUndefined();
    s3.reset();
    s3.on(GetObjectCommand).rejects(forbidden());
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'models/current.json' }] });
    await expect(store.getJsonIfExists('models/current.json')).rejects.toThrow(
      /S3 Forbidden on s3:\/\/b\/models\/current\.json/,
    );
  });
});

describe('S3ObjectStore.getIfExists against the real local S3', () => {
  let t: TestS3;
  beforeAll(async () => {
    t = await startTestS3();
  });
  afterAll(async () => {
    await t.close();
    await rm(CALL_LOG, { force: true });
  });

  /** The S3 calls `fn` makes, as the call log records them. */
  async function calls(fn: () => Promise<unknown>): Promise<RecordedCall[]> {
    await rm(CALL_LOG, { force: true });
    await fn();
    const text = await readFile(CALL_LOG, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as RecordedCall);
  }

  it('reads a present object in one GET: body, size, ETag and metadata', async () => {
    await t.store.put('runs/r/x.json', '{"a":1}', { metadata: { sha256: 'abc' } });
    let found: Awaited<ReturnType<S3ObjectStore['getIfExists']>>;
    const made = await calls(async () => {
      found = await t.store.getIfExists('runs/r/x.json');
    });
    expect(made.map((c) => c.command)).toEqual(['GetObject']);
    expect(found).toMatchObject({ size: 7, metadata: { sha256: 'abc' } });
    expect(found?.etag).toMatch(/^"[0-9a-f]{32}"$/);
    const chunks: Buffer[] = [];
    for await (const chunk of found!.body) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('{"a":1}');
    expect(await t.store.getJsonIfExists('runs/r/x.json')).toEqual({ a: 1 });
  });

  it('answers an absent key with undefined after exactly one request, and no HEAD', async () => {
    let json: unknown = 'unset';
    const made = await calls(async () => {
      json = await t.store.getJsonIfExists('runs/r/absent.json');
    });
    expect(json).toBeUndefined();
    expect(made).toEqual([
      {
        service: 's3',
        command: 'GetObject',
        bucket: t.store.bucket,
        key: 'runs/r/absent.json',
        missing: true,
      },
    ]);
    expect(await t.store.getIfExists('runs/r/absent.json')).toBeUndefined();
  });

  it('names the key when a present object is not JSON', async () => {
    await t.store.put('runs/r/bad.json', '{oops');
    await expect(t.store.getJsonIfExists('runs/r/bad.json')).rejects.toThrow(
      /s3:\/\/test-bucket\/runs\/r\/bad\.json is not valid JSON/,
    );
  });
});
