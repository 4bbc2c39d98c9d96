import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  DataError,
  errorMessage,
  InputError,
  isTransientNetworkError,
  networkErrorCode,
  TransientError,
} from '../errors.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { type TarFile, tarStream } from './tar-writer.ts';

// Where a dataset comes from, and how to stream it as one tarball whatever its kind.

export type SourceRef =
  | { kind: 'http'; url: string }
  | { kind: 's3'; bucket: string; key: string }
  | { kind: 'path'; path: string };

export function parseSource(source: string): SourceRef {
  if (/^https?:\/\//i.test(source)) {
    try {
      return { kind: 'http', url: new URL(source).href };
    } catch {
      throw new InputError(`source ${source} is not a valid URL`);
    }
  }
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(source);
  if (s3) return { kind: 's3', bucket: s3[1]!, key: s3[2]! };
  if (source.startsWith('s3://')) throw new InputError(`source ${source} must look like s3://bucket/key`);
  if (source.startsWith('file://')) return { kind: 'path', path: fileURLToPath(source) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    throw new InputError(
      `source ${source}: unsupported scheme (use https://, http://, s3://, file:// or a path)`,
    );
  }
  return { kind: 'path', path: resolve(source) };
}

export function describeSource(ref: SourceRef): string {
  if (ref.kind === 'http') return ref.url;
  if (ref.kind === 's3') return `s3://${ref.bucket}/${ref.key}`;
  return ref.path;
}

async function statPath(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(
      code === 'ENOENT' ? `source ${path} does not exist` : `source ${path} cannot be read (${code})`,
    );
  }
}

/** Files below `root`, relative, sorted by code unit so packing is deterministic. */
async function listFiles(root: string): Promise<{ rel: string; size: number; mtimeMs: number }[]> {
  const out: { rel: string; size: number; mtimeMs: number }[] = [];
  async function walk(dir: string): Promise<void> {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const full = join(dir, name);
      const st = await stat(full);
      if (st.isDirectory()) await walk(full);
      else if (st.isFile())
        out.push({ rel: relative(root, full).split(sep).join('/'), size: st.size, mtimeMs: st.mtimeMs });
    }
  }
  await walk(root);
  out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return out;
}

/**
 * A cheap identity of the source's current content (size and modification time, ETag…), used to
 * skip a download when the same source was fetched before. Undefined when none is available.
 */
export async function sourceFingerprint(ref: SourceRef, store: ObjectStore): Promise<string | undefined> {
  if (ref.kind === 'path') {
    const st = await statPath(ref.path);
    if (st.isFile()) return `file:${st.size}:${Math.trunc(st.mtimeMs)}`;
    const listing = (await listFiles(ref.path)).map((f) => `${f.rel}\t${f.size}\t${Math.trunc(f.mtimeMs)}\n`);
    return `dir:${createHash('sha256').update(listing.join('')).digest('hex')}`;
  }
  if (ref.kind === 's3') {
    const info = await store.forBucket(ref.bucket).head(ref.key);
    return info ? `s3:${info.size}:${info.etag}` : undefined;
  }
  try {
    const res = await fetch(ref.url, { method: 'HEAD', redirect: 'follow' });
    const tag = res.headers.get('etag') ?? res.headers.get('last-modified');
    const len = res.headers.get('content-length');
    return res.ok && tag && len ? `http:${len}:${tag}` : undefined;
  } catch {
    return undefined;
  }
}

async function* directoryFiles(root: string): AsyncGenerator<TarFile> {
  for (const f of await listFiles(root)) yield { name: f.rel, data: await readFile(join(root, f.rel)) };
}

/** What to check when a download cannot work however often it is tried. */
const PERMANENT_HINTS: Record<string, string> = {
  ECONNREFUSED: 'nothing listens there: check the host and port',
  ENOTFOUND: 'the host name does not resolve: check it for typos',
  EHOSTUNREACH: 'the host cannot be reached from here: check the address and the network',
  ENETUNREACH: 'the network cannot be reached from here: check the address and the network',
  CERT_HAS_EXPIRED: "the server's TLS certificate has expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's TLS certificate is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's TLS certificate chain is self-signed",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's TLS certificate cannot be verified",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's TLS certificate is for another host name",
};

async function openHttp(url: string): Promise<Readable> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow' });
  } catch (err) {
    const code = networkErrorCode(err);
    const cause = (err as { cause?: { message?: string } }).cause?.message ?? errorMessage(err);
    const msg = `GET ${url} failed: ${cause}`;
    if (isTransientNetworkError(err)) throw new TransientError(msg);
    throw new DataError(`${msg}: ${PERMANENT_HINTS[code ?? ''] ?? 'check the URL'} (not retried)`);
  }
  if (!res.ok || !res.body) {
    const msg = `GET ${url} answered HTTP ${res.status} ${res.statusText}`;
    if (res.status >= 500 || res.status === 429 || res.status === 408) throw new TransientError(msg);
    throw new DataError(`${msg}: check the URL and that it is publicly readable`);
  }
  return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
}

/**
 * Opens the source as a stream of tarball bytes: the file itself, the object itself, the
 * HTTP body, or an ImageFolder directory packed on the fly (sorted, so deterministic).
 */
export async function openSource(ref: SourceRef, store: ObjectStore): Promise<Readable> {
  if (ref.kind === 'http') return openHttp(ref.url);
  if (ref.kind === 's3') return store.forBucket(ref.bucket).getStream(ref.key);
  if (!isAbsolute(ref.path)) throw new InputError(`source path ${ref.path} must be absolute`);
  const st = await statPath(ref.path);
  if (st.isDirectory()) return tarStream(directoryFiles(ref.path));
  if (!st.isFile()) throw new InputError(`source ${ref.path} is neither a file nor a directory`);
  return createReadStream(ref.path, { highWaterMark: 1024 * 1024 });
}
