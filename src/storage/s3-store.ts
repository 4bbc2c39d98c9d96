import type { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { SDK_RETRY, withRetryRule } from '../aws/sdk-retry.ts';
import {
  DataError,
  errorMessage,
  InputError,
  isTransientServiceError,
  NotFoundError,
  TransientError,
} from '../errors.ts';
import { recordCalls } from './call-log.ts';
import type { ByteRange, ObjectInfo, ObjectStore, PutOptions, StoredObject } from './object-store.ts';

// The one module that speaks S3. It works against AWS and against any S3-compatible
// endpoint (the embedded s3rver), through the real AWS SDK.

export interface S3StoreConfig {
  bucket: string;
  /** Custom endpoint (the local server); undefined on AWS. */
  endpoint?: string;
  region?: string;
}

/** Multipart part size: memory of a streamed upload is about partSize × queueSize. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 4;

export function createS3Client(cfg: S3StoreConfig): S3Client {
  const client = new S3Client({
    region: cfg.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...SDK_RETRY,
    // Without these, streamed bodies go out with aws-chunked framing that s3rver stores verbatim.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(cfg.endpoint
      ? {
          endpoint: cfg.endpoint,
          forcePathStyle: true,
          credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        }
      : {}),
  });
  // Off unless a test asks for it (DOGBREED_AWS_CALL_LOG).
  return recordCalls(withRetryRule(client));
}

function isNotFound(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404;
}

function isForbidden(err: unknown): boolean {
  return err instanceof S3ServiceException && err.$metadata.httpStatusCode === 403;
}

/** Maps SDK errors to the pipeline's named errors, naming the key. */
function mapError(err: unknown, bucket: string, key: string): Error {
  if (isNotFound(err)) return new NotFoundError(`s3://${bucket}/${key} does not exist`);
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode ?? 0;
    const msg = `S3 ${err.name} on s3://${bucket}/${key}: ${err.message}`;
    return status >= 500 || status === 429 || status === 0 ? new TransientError(msg) : new DataError(msg);
  }
  if (isTransientServiceError(err)) {
    return new TransientError(`S3 connection error on s3://${bucket}/${key}: ${errorMessage(err)}`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Tags as S3's x-amz-tagging header wants them: a URL-encoded query string. */
function tagging(tags: Record<string, string> | undefined): string | undefined {
  return tags ? new URLSearchParams(tags).toString() : undefined;
}

export class S3ObjectStore implements ObjectStore {
  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
  ) {}

  private async call<T>(key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapError(err, this.bucket, key);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, etag: out.ETag ?? '', metadata: out.Metadata ?? {} };
    } catch (err) {
      if (await this.absent(key, err)) return undefined;
      throw mapError(err, this.bucket, key);
    }
  }

  async getIfExists(key: string): Promise<StoredObject | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        body: out.Body as Readable,
        size: out.ContentLength ?? 0,
        etag: out.ETag ?? '',
        metadata: out.Metadata ?? {},
      };
    } catch (err) {
      if (await this.absent(key, err)) return undefined;
      throw mapError(err, this.bucket, key);
    }
  }

  async getJsonIfExists<T>(key: string): Promise<T | undefined> {
    const found = await this.getIfExists(key);
    return found && this.parseJson<T>(key, await this.call(key, () => readAll(found.body)));
  }

  /** Whether a failed read means "no such key" (a 404, or a 403 for a key a listing does not show). */
  private async absent(key: string, err: unknown): Promise<boolean> {
    return isNotFound(err) || (isForbidden(err) && !(await this.listed(key)));
  }

  /**
   * Whether `key` exists, by listing: S3 answers a HEAD of a missing key with 403 instead of 404
   * when the caller's s3:ListBucket is limited to prefixes (the per-function IAM on AWS).
   */
  private async listed(key: string): Promise<boolean> {
    const out = await this.call(key, () =>
      this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: key, MaxKeys: 1 })),
    );
    return out.Contents?.[0]?.Key === key;
  }

  async getStream(key: string, range?: ByteRange): Promise<Readable> {
    return this.call(key, async () => {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      return out.Body as Readable;
    });
  }

  async getBytes(key: string, range?: ByteRange): Promise<Buffer> {
    return this.call(key, async () => {
      const buf = await readAll(await this.getStream(key, range));
      if (range && buf.length !== range.end - range.start + 1) {
        throw new DataError(
          `s3://${this.bucket}/${key}: asked for bytes ${range.start}-${range.end}, got ${buf.length} bytes (object shorter than the index says?)`,
        );
      }
      return buf;
    });
  }

  async getText(key: string): Promise<string> {
    return (await this.getBytes(key)).toString('utf8');
  }

  async getJson<T>(key: string): Promise<T> {
    return this.parseJson<T>(key, await this.getBytes(key));
  }

  private parseJson<T>(key: string, bytes: Buffer): T {
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch {
      throw new DataError(`s3://${this.bucket}/${key} is not valid JSON (${bytes.length} bytes)`);
    }
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<void> {
    await this.call(key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: opts.contentType,
          Metadata: opts.metadata,
          Tagging: tagging(opts.tags),
        }),
      ),
    );
  }

  async putJson(key: string, value: unknown, opts: PutOptions = {}): Promise<void> {
    await this.put(key, `${JSON.stringify(value, null, 2)}\n`, { contentType: 'application/json', ...opts });
  }

  async upload(
    key: string,
    body: Readable,
    opts: PutOptions & { onProgress?: (bytes: number) => void } = {},
  ): Promise<void> {
    await this.call(key, async () => {
      const up = new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: opts.contentType,
          Metadata: opts.metadata,
        },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        // A failed upload is aborted, so no half-written object is ever visible.
        leavePartsOnError: false,
      });
      if (opts.onProgress)
        up.on('httpUploadProgress', (p) => p.loaded !== undefined && opts.onProgress?.(p.loaded));
      await up.done();
    });
  }

  async copy(fromKey: string, toKey: string, opts: PutOptions = {}): Promise<void> {
    await this.call(toKey, () =>
      this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: toKey,
          CopySource: `${this.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`,
          ...(opts.metadata ? { Metadata: opts.metadata, MetadataDirective: 'REPLACE' as const } : {}),
          ...(opts.tags ? { Tagging: tagging(opts.tags), TaggingDirective: 'REPLACE' as const } : {}),
          ContentType: opts.contentType,
        }),
      ),
    );
  }

  async delete(key: string): Promise<void> {
    await this.call(key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    let token: string | undefined;
    do {
      const out = await this.call(prefix, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      for (const o of out.Contents ?? []) if (o.Key) yield { key: o.Key, size: o.Size ?? 0 };
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  forBucket(bucket: string): ObjectStore {
    return bucket === this.bucket ? this : new S3ObjectStore(this.client, bucket);
  }
}

/** A store on `bucket`, at AWS or at an S3-compatible endpoint (the embedded server). */
export function openStore(cfg: S3StoreConfig): S3ObjectStore {
  return new S3ObjectStore(createS3Client(cfg), cfg.bucket);
}

const cache = new Map<string, S3ObjectStore>();

/**
 * The store named by the environment (DOGBREED_BUCKET, and DOGBREED_S3_ENDPOINT for the
 * embedded server). Clients are created once and reused while a Lambda container is warm.
 */
export function storeFromEnv(env: NodeJS.ProcessEnv = process.env): S3ObjectStore {
  const bucket = env.DOGBREED_BUCKET;
  if (!bucket) {
    throw new InputError(
      "DOGBREED_BUCKET is not set: the function does not know which bucket to use; set it in the function's environment",
    );
  }
  const endpoint = env.DOGBREED_S3_ENDPOINT || undefined;
  const id = `${endpoint ?? 'aws'}|${bucket}`;
  let store = cache.get(id);
  if (!store) {
    store = openStore({ bucket, endpoint });
    cache.set(id, store);
  }
  return store;
}
