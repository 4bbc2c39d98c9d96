import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as fetchHandler } from '../functions/fetch-dataset.ts';
import { PROFILES } from '../src/dataset/profiles.ts';
import {
  checkUrlHost,
  DEPLOYED_SOURCES,
  isInternalAddress,
  type SourcePolicy,
} from '../src/dataset/source-policy.ts';
import { openSource } from '../src/dataset/sources.ts';
import { packTar } from '../src/dataset/tar-writer.ts';
import { DataError, InputError } from '../src/errors.ts';
import { useLocalS3 } from '../src/local/pipeline.ts';
import { fetchDataset } from '../src/stages/fetch-dataset.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// What a deployed FetchDataset refuses: its own files, and URLs that reach internal addresses
// (directly, or by a redirect); and what the stanford-dogs profile's size pin refuses. Host
// names resolve through an injected lookup: no DNS, no network beyond loopback.

/** A resolver from a fixed table; unknown names fail as DNS does. */
const table =
  (entries: Record<string, string[]>) =>
  async (host: string): Promise<string[]> => {
    const found = entries[host];
    if (!found) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
    return found;
  };

const deployed = (entries: Record<string, string[]>): SourcePolicy => ({
  ...DEPLOYED_SOURCES,
  lookup: table(entries),
});

describe('internal addresses', () => {
  it.each([
    '127.0.0.1',
    '127.8.9.10',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fd00:ec2::254',
    '::ffff:127.0.0.1',
    '::ffff:a9fe:a9fe',
  ])('%s is internal', (ip) => {
    expect(isInternalAddress(ip)).toBe(true);
  });

  it.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700::6810:85e5', '::ffff:8.8.8.8'])(
    '%s is public',
    (ip) => {
      expect(isInternalAddress(ip)).toBe(false);
    },
  );
});

describe('checkUrlHost under the deployed policy', () => {
  const lookup = deployed({
    'dogs.example': ['93.184.216.34'],
    'mixed.example': ['93.184.216.34', '10.0.0.7'],
    'metadata.example': ['169.254.169.254'],
    '127.0.0.1': ['127.0.0.1'],
    '::1': ['::1'],
  });

  it('lets a host with only public addresses through', async () => {
    await expect(checkUrlHost('https://dogs.example/images.tar', lookup)).resolves.toBeUndefined();
  });

  it.each([
    ['http://127.0.0.1:9001/x.tar', '127.0.0.1'],
    ['http://[::1]/x.tar', '::1'],
    ['http://metadata.example/latest/', '169.254.169.254'],
    ['https://mixed.example/x.tar', '10.0.0.7'],
  ])('refuses %s, naming the address', async (url, address) => {
    const err = await checkUrlHost(url, lookup).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(`resolves to ${address}`);
    expect((err as Error).message).toContain(url);
  });

  it('names a host that does not resolve', async () => {
    await expect(checkUrlHost('https://nowhere.example/x.tar', lookup)).rejects.toThrow(
      /host nowhere\.example does not resolve/,
    );
  });

  it('lets anything through on a developer machine', async () => {
    await expect(
      checkUrlHost('http://127.0.0.1/x.tar', { allowLocalPaths: true, allowPrivateHosts: true }),
    ).resolves.toBeUndefined();
  });
});

describe('FetchDataset refuses, deployed, before anything is stored', () => {
  let t: TestS3;
  let dir: string;
  let server: Server;
  let base: string;
  const tar = packTar([{ name: 'a/1.jpg', data: Buffer.alloc(3000, 1) }]);
  const hits: string[] = [];

  beforeAll(async () => {
    t = await startTestS3();
    dir = await mkdtemp(join(tmpdir(), 'dogbreed-policy-'));
    await writeFile(join(dir, 'data.tar'), tar);
    server = createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      if (req.url === '/redirect') res.writeHead(302, { location: 'http://metadata.example/creds' }).end();
      else res.writeHead(200, { 'content-length': tar.length }).end(req.method === 'HEAD' ? undefined : tar);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['a path', () => join(dir, 'data.tar')],
    ['a file:// URL', () => `file://${join(dir, 'data.tar')}`],
    ['/proc/self/environ', () => 'file:///proc/self/environ'],
  ])('%s', async (_what, source) => {
    const err = await fetchDataset(t.store, { source: source(), policy: DEPLOYED_SOURCES }).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/reads only https:\/\/, http:\/\/ and s3:\/\/ sources/);
    expect(await t.keys()).toEqual([]);
  });

  it('a URL on loopback, without sending it a request', async () => {
    hits.length = 0;
    const policy = deployed({ '127.0.0.1': ['127.0.0.1'] });
    await expect(fetchDataset(t.store, { source: `${base}/data.tar`, policy })).rejects.toThrow(
      /resolves to 127\.0\.0\.1/,
    );
    expect(hits).toEqual([]);
    expect(await t.keys()).toEqual([]);
  });

  it('a public URL that redirects to an internal address, without following it', async () => {
    hits.length = 0;
    // The test server stands in for a public host; the redirect target is instance metadata.
    const policy = deployed({ '127.0.0.1': ['93.184.216.34'], 'metadata.example': ['169.254.169.254'] });
    await expect(fetchDataset(t.store, { source: `${base}/redirect`, policy })).rejects.toThrow(
      /metadata\.example resolves to 169\.254\.169\.254/,
    );
    expect(hits.every((h) => h.endsWith(' /redirect'))).toBe(true);
    expect(await t.keys()).toEqual([]);
  });

  it('a host that resolves to a public address, then to an internal one (DNS rebinding)', async () => {
    hits.length = 0;
    const port = new URL(base).port;
    let lookups = 0;
    // openSource checks the source, then the request's URL, before connecting: those two see a
    // public address; the connection's own lookup sees loopback and must refuse it.
    const policy: SourcePolicy = {
      ...DEPLOYED_SOURCES,
      lookup: async () => (++lookups <= 2 ? ['93.184.216.34'] : ['127.0.0.1']),
    };
    const ref = { kind: 'http' as const, url: `http://rebind.example:${port}/data.tar` };
    await expect(openSource(ref, t.store, policy)).rejects.toThrow(
      /rebind\.example resolves to 127\.0\.0\.1/,
    );
    expect(lookups).toBe(3);
    expect(hits).toEqual([]);
  });

  it('still fetches a public URL', async () => {
    const policy = deployed({ '127.0.0.1': ['93.184.216.34'] });
    const r = await fetchDataset(t.store, { source: `${base}/data.tar`, policy });
    expect(r.bytes).toBe(tar.length);
    for (const key of await t.keys()) await t.store.delete(key);
  });

  it('the Lambda handler picks the deployed policy on AWS, and the open one elsewhere', async () => {
    const restore = useLocalS3(t.s3.endpoint, t.s3.bucket);
    const source = join(dir, 'data.tar');
    const event = { runId: 'policy-run', config: { source } };
    try {
      process.env.AWS_LAMBDA_FUNCTION_NAME = 'dogbreed-pipeline-test-FetchDataset';
      await expect(fetchHandler(event, {} as never)).rejects.toThrow(/never its own files/);
      expect(await t.keys()).toEqual([]);
      delete process.env.AWS_LAMBDA_FUNCTION_NAME;
      await expect(fetchHandler(event, {} as never)).resolves.toMatchObject({ bytes: tar.length });
    } finally {
      delete process.env.AWS_LAMBDA_FUNCTION_NAME;
      restore();
      for (const key of await t.keys()) await t.store.delete(key);
    }
  });
});

describe('the tarball size pin', () => {
  let t: TestS3;
  let dir: string;
  const tar = packTar([
    { name: 'a/1.jpg', data: Buffer.alloc(3000, 1) },
    { name: 'b/2.jpg', data: Buffer.alloc(5000, 2) },
  ]);

  beforeAll(async () => {
    t = await startTestS3();
    dir = await mkdtemp(join(tmpdir(), 'dogbreed-pin-'));
    await writeFile(join(dir, 'data.tar'), tar);
  });
  afterAll(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stanford-dogs pins the published images.tar size', () => {
    expect(PROFILES['stanford-dogs'].tarballBytes).toBe(793_579_520);
    expect(PROFILES.imagefolder.tarballBytes).toBeUndefined();
  });

  it.each([
    ['truncated (shorter than the pin)', tar.length + 512],
    ['substituted (longer than the pin)', tar.length - 512],
  ])('%s: fails naming both sizes, and leaves no object behind', async (_what, pin) => {
    const source = join(dir, 'data.tar');
    const err = await fetchDataset(t.store, { source, expectedBytes: pin }).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toBe(
      `${source} is ${pin < tar.length ? `over ${pin}` : tar.length} bytes, but the dataset profile expects exactly ${pin}: the download is truncated or not the expected tarball; nothing was kept`,
    );
    expect(await t.keys()).toEqual([]);
  });

  it('passes the exact size', async () => {
    const r = await fetchDataset(t.store, { source: join(dir, 'data.tar'), expectedBytes: tar.length });
    expect(r.bytes).toBe(tar.length);
  });

  it('the handler applies the profile pin: a stanford-dogs run on a small tarball fails at FetchDataset', async () => {
    const restore = useLocalS3(t.s3.endpoint, t.s3.bucket);
    for (const key of await t.keys()) await t.store.delete(key);
    try {
      const event = { runId: 'pin-run', config: { source: join(dir, 'data.tar'), profile: 'stanford-dogs' } };
      await expect(fetchHandler(event, {} as never)).rejects.toThrow(
        new DataError(
          `${join(dir, 'data.tar')} is ${tar.length} bytes, but the dataset profile expects exactly 793579520: the download is truncated or not the expected tarball; nothing was kept`,
        ),
      );
      expect(await t.keys()).toEqual([]);
    } finally {
      restore();
    }
  });
});
