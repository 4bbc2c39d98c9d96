import { resolve } from 'node:path';
import { resolveStage } from '../aws/stage.ts';
import { LOCAL_BUCKET } from '../local/pipeline.ts';
import { type LocalS3, startLocalS3 } from '../local/s3-server.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { openStore } from '../storage/s3-store.ts';

// Where the commands that read and write runs find the bucket: the workspace's local S3 (the
// embedded default), or a deployed stage's bucket on AWS (--stage NAME).

/** --workspace, else $DOGBREED_WORKSPACE, else ./.dogbreed. */
export function workspaceDir(flag: string | undefined): string {
  return resolve(flag ?? process.env.DOGBREED_WORKSPACE ?? '.dogbreed');
}

export interface StoreTarget {
  workspace?: string;
  stage?: string;
  region?: string;
}

/** The bucket, served for the duration of `fn`; `local` is set on the embedded default. */
export async function withStore<T>(
  target: StoreTarget,
  fn: (store: ObjectStore, local?: LocalS3) => Promise<T>,
): Promise<T> {
  if (target.stage) {
    const stage = await resolveStage(target.stage, { region: target.region });
    // DOGBREED_S3_ENDPOINT points a stage at an S3-compatible endpoint (tests use a local one).
    return fn(
      openStore({
        bucket: stage.bucket,
        region: stage.region,
        endpoint: process.env.DOGBREED_S3_ENDPOINT || undefined,
      }),
    );
  }
  const s3 = await startLocalS3({
    directory: resolve(workspaceDir(target.workspace), 's3'),
    bucket: LOCAL_BUCKET,
  });
  try {
    return await fn(openStore({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint }), s3);
  } finally {
    await s3.close();
  }
}

/** The workspace's local bucket, served for the duration of `fn`. */
export function withWorkspaceStore<T>(workspace: string, fn: (store: ObjectStore) => Promise<T>): Promise<T> {
  return withStore({ workspace }, fn);
}
