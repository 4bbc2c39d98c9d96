import {
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { INTERMEDIATE } from '../src/storage/object-store.ts';
import { S3ObjectStore } from '../src/storage/s3-store.ts';

// The request shape only AWS acts on: s3rver stores no object tags, so the tag header that the
// bucket's lifecycle rule keys on is checked on the request itself.

const s3 = mockClient(S3Client);
afterEach(() => s3.reset());

describe('S3ObjectStore tags', () => {
  it('sends intermediate objects with the lifecycle tag, and plain objects without one', async () => {
    s3.on(PutObjectCommand).resolves({});
    const store = new S3ObjectStore(new S3Client({ region: 'us-east-1' }), 'b');
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
    const store = new S3ObjectStore(new S3Client({ region: 'us-east-1' }), 'b');
    expect(await store.head('models/current.json')).toBeUndefined();
  });

  it('reports a 403 on a key that exists as the permission problem it is', async () => {
    s3.on(HeadObjectCommand).rejects(forbidden());
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'models/current.json' }] });
    const store = new S3ObjectStore(new S3Client({ region: 'us-east-1' }), 'b');
    await expect(store.head('models/current.json')).rejects.toThrow(
      /S3 Forbidden on s3:\/\/b\/models\/current\.json/,
    );
  });
});
