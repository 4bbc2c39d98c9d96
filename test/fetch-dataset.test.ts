import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { packTar } from '../src/dataset/tar-writer.ts';
import { DataError, InputError, TransientError } from '../src/errors.ts';
import { datasetIdFor, fetchDataset } from '../src/stages/fetch-dataset.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('FetchDataset against the local S3', () => {
  let t: TestS3;
  let dir: string;
  const tar = packTar([
    { name: 'a/1.jpg', data: Buffer.alloc(3000, 1) },
    { name: 'b/2.jpg', data: Buffer.alloc(5000, 2) },
  ]);
  let tarPath: string;

  beforeAll(async () => {
    t = await startTestS3();
    dir = await mkdtemp(join(tmpdir(), 'dogbreed-fetch-'));
    tarPath = join(dir, 'data.tar');
    await writeFile(tarPath, tar);
  });
  afterAll(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    for (const key of await t.keys()) await t.store.delete(key);
  });

  it('streams a file into a content-addressed key with its checksum, leaving nothing in _incoming', async () => {
    const r = await fetchDataset(t.store, { source: tarPath });
    expect(r).toEqual({
      datasetId: sha(tar).slice(0, 16),
      tarKey: `datasets/${sha(tar).slice(0, 16)}/images.tar`,
      sha256: sha(tar),
      bytes: tar.length,
      skipped: false,
    });
    expect((await t.store.getBytes(r.tarKey)).equals(tar)).toBe(true);
    expect((await t.store.head(r.tarKey))?.metadata.sha256).toBe(sha(tar));
    expect(await t.keys('datasets/_incoming/')).toEqual([]);
  });

  it('skips an unchanged source the second time, and says so', async () => {
    const first = await fetchDataset(t.store, { source: `file://${tarPath}` });
    const second = await fetchDataset(t.store, { source: `file://${tarPath}` });
    expect(first.skipped).toBe(false);
    expect(second).toEqual({ ...first, skipped: true });
  });

  it('skips without reading the source when the expected checksum is already stored', async () => {
    await fetchDataset(t.store, { source: tarPath });
    const r = await fetchDataset(t.store, {
      source: join(dir, 'does-not-exist.tar'),
      expectedSha256: sha(tar),
    });
    expect(r.skipped).toBe(true);
    expect(r.sha256).toBe(sha(tar));
  });

  it('fails on a checksum mismatch and keeps nothing a later step could take as good', async () => {
    const wrong = 'f'.repeat(64);
    const err = await fetchDataset(t.store, { source: tarPath, expectedSha256: wrong }).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toContain(`expected ${wrong}`);
    expect(err.message).toContain(sha(tar));
    expect(await t.keys()).toEqual([]);
  });

  it('packs an ImageFolder directory deterministically: same content, same dataset id', async () => {
    const make = async (root: string) => {
      await mkdir(join(root, 'b'), { recursive: true });
      await mkdir(join(root, 'a'), { recursive: true });
      await writeFile(join(root, 'b', '2.jpg'), Buffer.alloc(10, 2));
      await writeFile(join(root, 'a', '1.jpg'), Buffer.alloc(20, 1));
      return root;
    };
    const one = await fetchDataset(t.store, { source: await make(join(dir, 'one')) });
    const two = await fetchDataset(t.store, { source: await make(join(dir, 'two')) });
    expect(two.datasetId).toBe(one.datasetId);
    const stored = await t.store.getBytes(one.tarKey);
    expect(
      stored.equals(
        packTar([
          { name: 'a/1.jpg', data: Buffer.alloc(20, 1) },
          { name: 'b/2.jpg', data: Buffer.alloc(10, 2) },
        ]),
      ),
    ).toBe(true);
  });

  it('says which path is missing', async () => {
    const missing = join(dir, 'nope.tar');
    await expect(fetchDataset(t.store, { source: missing })).rejects.toThrow(
      new InputError(`source ${missing} does not exist`),
    );
  });

  it('rejects unsupported schemes by name', async () => {
    await expect(fetchDataset(t.store, { source: 'ftp://example.org/x.tar' })).rejects.toThrow(
      /unsupported scheme/,
    );
  });

  it('reads s3:// sources from the bucket', async () => {
    await t.store.put('incoming/upload.tar', tar);
    const r = await fetchDataset(t.store, { source: `s3://${t.store.bucket}/incoming/upload.tar` });
    expect(r.sha256).toBe(sha(tar));
  });

  describe('over HTTP', () => {
    let server: Server;
    let base: string;
    let failuresLeft = 0;
    const hits: string[] = [];

    beforeAll(async () => {
      server = createServer((req, res) => {
        hits.push(`${req.method} ${req.url}`);
        if (req.url === '/missing.tar') {
          res.writeHead(404, 'Not Found').end();
        } else if (req.url === '/flaky.tar' && req.method === 'GET' && failuresLeft > 0) {
          failuresLeft--;
          res.writeHead(503, 'Service Unavailable').end();
        } else {
          res.writeHead(200, { 'content-length': tar.length, etag: '"v1"' });
          res.end(req.method === 'HEAD' ? undefined : tar);
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('downloads, and the second time sees the same ETag and skips the GET', async () => {
      hits.length = 0;
      const first = await fetchDataset(t.store, { source: `${base}/data.tar` });
      const second = await fetchDataset(t.store, { source: `${base}/data.tar` });
      expect(first.sha256).toBe(sha(tar));
      expect(second.skipped).toBe(true);
      expect(hits.filter((h) => h.startsWith('GET'))).toEqual(['GET /data.tar']);
    });

    it('fails on an HTTP error status with the URL and the status', async () => {
      await expect(fetchDataset(t.store, { source: `${base}/missing.tar` })).rejects.toThrow(
        new DataError(
          `GET ${base}/missing.tar answered HTTP 404 Not Found: check the URL and that it is publicly readable`,
        ),
      );
    });

    it('fails a 503 with a TransientError (the state machine retries it)', async () => {
      failuresLeft = 1;
      const err = await fetchDataset(t.store, { source: `${base}/flaky.tar` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect((err as Error).message).toBe(`GET ${base}/flaky.tar answered HTTP 503 Service Unavailable`);
      // The retry the state machine makes then succeeds.
      expect((await fetchDataset(t.store, { source: `${base}/flaky.tar` })).sha256).toBe(sha(tar));
    });

    it('fails a refused connection at once with a DataError (never retried) that says what to check', async () => {
      const closed = createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((r) => closed.close(() => r()));
      const url = `http://127.0.0.1:${port}/images.tar`;
      const err = await fetchDataset(t.store, { source: url }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataError);
      expect((err as Error).message).toMatch(
        new RegExp(
          `^GET ${url.replaceAll('.', '\\.')} failed: .*ECONNREFUSED.*: nothing listens there: check the host and port \\(not retried\\)$`,
        ),
      );
    });
  });

  it('datasetIdFor is the first 16 hex digits', () => {
    expect(datasetIdFor('abcdef0123456789ffff')).toBe('abcdef0123456789');
  });
});
