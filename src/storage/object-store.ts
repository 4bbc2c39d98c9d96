import type { Readable } from 'node:stream';

// The port through which the core reads and writes objects. Only s3-store.ts implements it;
// the core never imports an AWS client.

export interface ObjectInfo {
  size: number;
  etag: string;
  metadata: Record<string, string>;
}

/** Inclusive byte range, as in an HTTP Range header. */
export interface ByteRange {
  start: number;
  end: number;
}

/** An object opened with one GET, with what HEAD would have said about it. */
export interface StoredObject extends ObjectInfo {
  /** The caller reads it to the end or destroys it: until then it holds a connection. */
  body: Readable;
}

export interface PutOptions {
  contentType?: string;
  metadata?: Record<string, string>;
  /** Object tags; the bucket's lifecycle rules expire objects tagged as intermediate. */
  tags?: Record<string, string>;
}

/** Shard lists, shards and per-shard predictions: rebuilt by a rerun, expired by the bucket's lifecycle. */
export const INTERMEDIATE: Record<string, string> = { 'dogbreed-retention': 'intermediate' };

export interface ObjectStore {
  readonly bucket: string;
  /** Size and user metadata, or undefined when the key does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Streams an object (or a byte range of it). Missing key: NotFoundError naming it. */
  getStream(key: string, range?: ByteRange): Promise<Readable>;
  getBytes(key: string, range?: ByteRange): Promise<Buffer>;
  getText(key: string): Promise<string>;
  getJson<T>(key: string): Promise<T>;
  /**
   * Reads a key that may be absent: one GET, undefined when there is no such key. Never HEAD
   * then GET: that is two requests, and the object can change or vanish between them.
   */
  getIfExists(key: string): Promise<StoredObject | undefined>;
  /** getIfExists + getJson: the parsed object, or undefined when the key is absent. */
  getJsonIfExists<T>(key: string): Promise<T | undefined>;
  /** Single PUT: the object appears whole or not at all. */
  put(key: string, body: Buffer | string, opts?: PutOptions): Promise<void>;
  putJson(key: string, value: unknown, opts?: PutOptions): Promise<void>;
  /** Streamed multipart upload with bounded memory; the object appears only when complete. */
  upload(
    key: string,
    body: Readable,
    opts?: PutOptions & { onProgress?: (bytes: number) => void },
  ): Promise<void>;
  /** Server-side copy, replacing metadata when given. */
  copy(fromKey: string, toKey: string, opts?: PutOptions): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix: string): AsyncIterable<{ key: string; size: number }>;
  /** The same client on another bucket (an s3:// dataset source elsewhere). */
  forBucket(bucket: string): ObjectStore;
}
