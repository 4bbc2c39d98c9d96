import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { request as httpGet } from 'node:http';
import { request as httpsGet } from 'node:https';
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
import { checkUrlHost, connectLookup, LOCAL_SOURCES, type SourcePolicy } from './source-policy.ts';
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

/**
 * Refuses, before any I/O, a source the policy does not allow: local paths where they would be
 * the function's own files, and URLs whose host is internal.
 */
export async function checkSource(ref: SourceRef, policy: SourcePolicy): Promise<void> {
  if (ref.kind === 'path' && !policy.allowLocalPaths) {
    throw new InputError(
      `source ${ref.path}: a deployed stack reads only https://, http:// and s3:// sources, never its own files; upload the file first (the CLI's run command does) and pass its s3:// key`,
    );
  }
  if (ref.kind === 'http') await checkUrlHost(ref.url, policy);
}

/** Redirects followed when every hop must be checked (fetch's own limit is 20). */
const MAX_REDIRECTS = 5;
/** A connection that sends nothing for this long is given up (and the fetch retried). */
const IDLE_TIMEOUT_MS = 60_000;

/**
 * One HTTP request whose connection resolves its host through the policy (fetch cannot be
 * given a lookup), answered as a fetch Response.
 */
function checkedRequest(url: string, method: 'GET' | 'HEAD', policy: SourcePolicy): Promise<Response> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsGet : httpGet;
  return new Promise((resolve, reject) => {
    const req = send(u, { method, lookup: connectLookup(policy), timeout: IDLE_TIMEOUT_MS }, (res) => {
      const status = res.statusCode ?? 0;
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers))
        for (const v of [value ?? []].flat()) headers.append(name, v);
      const empty = method === 'HEAD' || status === 204 || status === 304;
      if (empty) res.resume();
      const body = empty ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
      resolve(new Response(body, { status, statusText: res.statusMessage, headers }));
    });
    // fetch gives up on a silent server by itself; a bare request waits until Lambda's timeout.
    req.on('timeout', () =>
      req.destroy(new TransientError(`${method} ${url}: no data for ${IDLE_TIMEOUT_MS / 1000} s`)),
    );
    req.on('error', (err) =>
      reject(
        err instanceof InputError || err instanceof TransientError
          ? err
          : Object.assign(new Error(err.message), { cause: err }),
      ),
    );
    req.end();
  });
}

/**
 * fetch(), or where internal hosts are refused, a request that checks every host it connects
 * to, redirects included: a public URL must not bounce the request to an internal address.
 */
async function httpRequest(url: string, method: 'GET' | 'HEAD', policy: SourcePolicy): Promise<Response> {
  if (policy.allowPrivateHosts) return fetch(url, { method, redirect: 'follow' });
  let at = url;
  for (let hop = 0; ; hop++) {
    // Named in a clear error before connecting; the connection's own lookup checks again.
    await checkUrlHost(at, policy);
    const res = await checkedRequest(at, method, policy);
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) return res;
    if (hop >= MAX_REDIRECTS) throw new DataError(`${method} ${url}: more than ${MAX_REDIRECTS} redirects`);
    await res.body?.cancel();
    at = new URL(location, at).href;
    if (!/^https?:$/.test(new URL(at).protocol)) {
      throw new InputError(`source ${url} redirects to ${at}: only http(s) redirects are followed`);
    }
  }
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
export async function sourceFingerprint(
  ref: SourceRef,
  store: ObjectStore,
  policy: SourcePolicy = LOCAL_SOURCES,
): Promise<string | undefined> {
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
    const res = await httpRequest(ref.url, 'HEAD', policy);
    const tag = res.headers.get('etag') ?? res.headers.get('last-modified');
    const len = res.headers.get('content-length');
    return res.ok && tag && len ? `http:${len}:${tag}` : undefined;
  } catch (err) {
    if (err instanceof InputError) throw err;
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

async function openHttp(url: string, policy: SourcePolicy): Promise<Readable> {
  let res: Response;
  try {
    res = await httpRequest(url, 'GET', policy);
  } catch (err) {
    if (err instanceof InputError || err instanceof DataError || err instanceof TransientError) throw err;
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
export async function openSource(
  ref: SourceRef,
  store: ObjectStore,
  policy: SourcePolicy = LOCAL_SOURCES,
): Promise<Readable> {
  await checkSource(ref, policy);
  if (ref.kind === 'http') return openHttp(ref.url, policy);
  if (ref.kind === 's3') return store.forBucket(ref.bucket).getStream(ref.key);
  if (!isAbsolute(ref.path)) throw new InputError(`source path ${ref.path} must be absolute`);
  const st = await statPath(ref.path);
  if (st.isDirectory()) return tarStream(directoryFiles(ref.path));
  if (!st.isFile()) throw new InputError(`source ${ref.path} is neither a file nor a directory`);
  return createReadStream(ref.path, { highWaterMark: 1024 * 1024 });
}
