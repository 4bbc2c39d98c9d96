import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalS3, startLocalS3 } from '../../src/local/s3-server.ts';
import { openStore, type S3ObjectStore } from '../../src/storage/s3-store.ts';

export interface TestS3 {
  s3: LocalS3;
  store: S3ObjectStore;
  dir: string;
  /** Every key in the bucket, sorted. */
  keys(prefix?: string): Promise<string[]>;
  close(): Promise<void>;
}

/** A real s3rver on loopback with its data in a fresh temp folder, and a store on it. */
export async function startTestS3(bucket = 'test-bucket'): Promise<TestS3> {
  const dir = await mkdtemp(join(tmpdir(), 'dogbreed-s3-'));
  const s3 = await startLocalS3({ directory: dir, bucket });
  const store = openStore({ bucket, endpoint: s3.endpoint });
  return {
    s3,
    store,
    dir,
    async keys(prefix = '') {
      const out: string[] = [];
      for await (const o of store.list(prefix)) out.push(o.key);
      return out.sort();
    },
    async close() {
      await s3.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
