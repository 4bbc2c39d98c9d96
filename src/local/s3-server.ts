import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

// The embedded S3: a real S3-compatible HTTP server on loopback, data kept in the workspace
// so datasets fetched once stay there between commands.

export interface LocalS3 {
  endpoint: string;
  bucket: string;
  /** The s3rver instance, whose 'event' emits S3 notification records. */
  server: S3rver;
  close(): Promise<void>;
}

export async function startLocalS3(opts: { directory: string; bucket: string }): Promise<LocalS3> {
  await mkdir(opts.directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: opts.directory,
    configureBuckets: [{ name: opts.bucket, configs: [] }],
  });
  writeObjectsAtomically(server.store as FilesystemStore);
  const addr = (await server.run()) as AddressInfo;
  let closed = false;
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    bucket: opts.bucket,
    server,
    async close() {
      if (closed) return;
      closed = true;
      // Keep-alive sockets of SDK clients would hold close() open; a stopped run may still
      // have requests in flight. Drop them all.
      const closing = server.close();
      server.httpServer?.closeAllConnections();
      await closing;
    },
  };
}

/** The part of s3rver's FilesystemStore that putObject uses. */
interface FilesystemStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5?: string): Promise<void>;
  getMetadata(bucket: string, key: string): Promise<unknown>;
  copyObject(
    srcBucket: string,
    srcKey: string,
    destBucket: string,
    destKey: string,
    replacementMetadata?: unknown,
  ): Promise<unknown>;
  putObject(object: {
    bucket: string;
    key: string;
    content: Buffer | Readable;
    metadata: unknown;
  }): Promise<{ size: number; md5: string }>;
}

/**
 * s3rver writes an object's file in place and its metadata after it, so a process killed
 * mid-write (a SIGKILLed run) would leave a partial object that reads as whole. Here the bytes
 * go to a temporary file that is renamed into place only after they and the metadata are
 * written: a key holds its old object or its new one, never part of one, as on S3.
 */
function writeObjectsAtomically(store: FilesystemStore): void {
  // Not named like s3rver's files (`<name>._S3rver_object`), so listings never see it.
  const partialPath = (objectPath: string) => `${objectPath}.partial-${randomBytes(4).toString('hex')}`;
  store.putObject = async (object) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    const partial = partialPath(objectPath);
    await mkdir(dirname(objectPath), { recursive: true });
    const md5 = createHash('md5');
    let size = 0;
    const source: Readable = Buffer.isBuffer(object.content)
      ? Readable.from([object.content])
      : object.content;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
          for await (const chunk of chunks) {
            md5.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(partial),
      );
      const digest = md5.digest('hex');
      await store.putMetadata(object.bucket, object.key, object.metadata, digest);
      await rename(partial, objectPath);
      return { size, md5: digest };
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  };
  const copyObject = store.copyObject.bind(store);
  store.copyObject = async (srcBucket, srcKey, destBucket, destKey, replacementMetadata) => {
    const src = (resource: string) => store.getResourcePath(srcBucket, srcKey, resource);
    const dest = (resource: string) => store.getResourcePath(destBucket, destKey, resource);
    if (src('object') === dest('object')) {
      return copyObject(srcBucket, srcKey, destBucket, destKey, replacementMetadata);
    }
    const partial = partialPath(dest('object'));
    await mkdir(dirname(partial), { recursive: true });
    try {
      await copyFile(src('object'), partial);
      if (replacementMetadata) await store.putMetadata(destBucket, destKey, replacementMetadata);
      else {
        await copyFile(src('metadata.json'), dest('metadata.json'));
        await copyFile(src('object.md5'), dest('object.md5')).catch(() => undefined);
      }
      await rename(partial, dest('object'));
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return store.getMetadata(destBucket, destKey);
  };
}
