import { resolve } from 'node:path';
import { LOCAL_BUCKET } from '../local/pipeline.ts';
import { startLocalS3 } from '../local/s3-server.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { createS3Client, S3ObjectStore } from '../storage/s3-store.ts';

/** --workspace, else $DOGBREED_WORKSPACE, else ./.dogbreed. */
export function workspaceDir(flag: string | undefined): string {
  return resolve(flag ?? process.env.DOGBREED_WORKSPACE ?? '.dogbreed');
}

/** The workspace's local bucket, served for the duration of `fn`. */
export async function withWorkspaceStore<T>(
  workspace: string,
  fn: (store: ObjectStore) => Promise<T>,
): Promise<T> {
  const s3 = await startLocalS3({ directory: resolve(workspace, 's3'), bucket: LOCAL_BUCKET });
  try {
    return await fn(
      new S3ObjectStore(createS3Client({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint }), LOCAL_BUCKET),
    );
  } finally {
    await s3.close();
  }
}
