import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
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
