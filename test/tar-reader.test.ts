import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { readTar, type TarEntry } from '../src/dataset/tar-reader.ts';
import { BLOCK, END_OF_ARCHIVE, packTar, pad, tarHeader } from '../src/dataset/tar-writer.ts';
import { DataError } from '../src/errors.ts';

async function* chunked(buf: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readAll(tar: Buffer, chunkSize = 4096, maxEntryBytes?: number): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  const opts = maxEntryBytes === undefined ? {} : { maxEntryBytes };
  for await (const e of readTar(chunked(tar, chunkSize), opts)) out.push(e);
  return out;
}

async function readError(tar: Buffer, chunkSize = 4096): Promise<Error> {
  try {
    await readAll(tar, chunkSize);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected readTar to fail');
}

/** A copy of the header with its fields patched and the checksum recomputed. */
function patch(header: Buffer, edit: (h: Buffer) => void): Buffer {
  const h = Buffer.from(header);
  edit(h);
  h.write('        ', 148, 8, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

const withFlag = (header: Buffer, flag: string) => patch(header, (h) => h.write(flag, 156, 1, 'latin1'));

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** A metadata entry (PAX 'x'/'g', GNU 'L'/'K') with its payload. */
function metaEntry(flag: string, payload: Buffer): Buffer {
  return Buffer.concat([withFlag(tarHeader({ name: 'meta', size: payload.length }), flag), pad(payload)]);
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

const files = [
  { name: 'a/empty.jpg', data: Buffer.alloc(0) },
  { name: 'a/one.jpg', data: bytes(1, 1) },
  { name: 'b/block.jpg', data: bytes(512, 2) },
  { name: 'b/odd.jpg', data: bytes(1300, 3) },
];

describe('readTar', () => {
  it.each([1, 7, 511, 512, 4096, 1 << 20])(
    'gives names, sizes, data and exact offsets (chunks of %i bytes)',
    async (chunk) => {
      const tar = packTar(files);
      const entries = await readAll(tar, chunk);
      expect(entries.map((e) => [e.name, e.type, e.size])).toEqual(
        files.map((f) => [f.name, 'file', f.data.length]),
      );
      let expectedHeader = 0;
      for (const [i, e] of entries.entries()) {
        expect(e.headerOffset).toBe(expectedHeader);
        expect(e.dataOffset).toBe(e.headerOffset + BLOCK);
        expect(e.data).toEqual(files[i]!.data);
        expect(tar.subarray(e.dataOffset, e.dataOffset + e.size)).toEqual(files[i]!.data);
        expectedHeader = e.dataOffset + pad(files[i]!.data).length;
      }
    },
  );

  it('skips the data of files over maxEntryBytes and keeps reading after them', async () => {
    const tar = packTar(files);
    const entries = await readAll(tar, 100, 512);
    expect(entries.map((e) => e.data?.length)).toEqual([0, 1, 512, undefined]);
    expect(entries[3]!.size).toBe(1300);
    const tar2 = packTar([...files].reverse());
    const entries2 = await readAll(tar2, 100, 512);
    expect(entries2.map((e) => e.name)).toEqual(files.map((f) => f.name).reverse());
    expect(entries2[1]!.data).toEqual(files[2]!.data);
  });

  it('accepts Uint8Array chunks that are not Buffers', async () => {
    const tar = packTar(files);
    const plain = new Uint8Array(tar);
    const entries: TarEntry[] = [];
    for await (const e of readTar(chunked(plain, 333))) entries.push(e);
    expect(entries.map((e) => e.data)).toEqual(files.map((f) => f.data));
  });

  it('reads PAX long and non-ASCII names, and PAX size and linkpath', async () => {
    const long = `Images/${'n02085620-Chihuahua/'.repeat(8)}n02085620_10074.jpg`;
    const tar = packTar([
      { name: long, data: bytes(700, 4) },
      { name: 'Images/Café/é.jpg', data: bytes(3, 5) },
    ]);
    const entries = await readAll(tar, 256);
    expect(entries.map((e) => e.name)).toEqual([long, 'Images/Café/é.jpg']);
    expect(entries[0]!.data).toEqual(bytes(700, 4));
    // The entry's own header follows the PAX header and its one block of records.
    expect(entries[0]!.headerOffset).toBe(2 * BLOCK);
    expect(tar.subarray(entries[1]!.dataOffset, entries[1]!.dataOffset + 3)).toEqual(bytes(3, 5));

    const pax = Buffer.from(
      paxRecord('size', '5') + paxRecord('linkpath', 'x/'.repeat(70)) + paxRecord('mtime', '1.5'),
    );
    const tar2 = Buffer.concat([
      metaEntry('x', pax),
      tarHeader({ name: 'c/sized.jpg', size: 0 }),
      pad(bytes(5, 6)),
      tarHeader({ name: 'c/next.jpg', size: 2 }),
      pad(bytes(2, 7)),
      END_OF_ARCHIVE,
    ]);
    const [sized, next] = await readAll(tar2);
    expect(sized).toMatchObject({ name: 'c/sized.jpg', size: 5, linkname: 'x/'.repeat(70) });
    expect(sized!.data).toEqual(bytes(5, 6));
    // PAX values apply to one entry only.
    expect(next).toMatchObject({ name: 'c/next.jpg', size: 2 });
    expect(next!.linkname).toBeUndefined();
  });

  it('ignores global PAX headers', async () => {
    const tar = Buffer.concat([
      metaEntry('g', Buffer.from(paxRecord('path', 'ignored.jpg'))),
      packTar(files),
    ]);
    const entries = await readAll(tar);
    expect(entries.map((e) => e.name)).toEqual(files.map((f) => f.name));
  });

  it('reads GNU long names and long link names', async () => {
    const longName = `d/${'x'.repeat(150)}.jpg`;
    const longLink = `t/${'y'.repeat(120)}`;
    const tar = Buffer.concat([
      metaEntry('L', Buffer.from(`${longName}\0`)),
      tarHeader({ name: longName.slice(0, 100), size: 4 }),
      pad(bytes(4, 8)),
      metaEntry('K', Buffer.from(`${longLink}\0`)),
      metaEntry('L', Buffer.from(`d/${'z'.repeat(120)}\0`)),
      tarHeader({ name: 'short', type: 'symlink', linkname: 'short-target' }),
      END_OF_ARCHIVE,
    ]);
    const [file, link] = await readAll(tar, 99);
    expect(file).toMatchObject({ name: longName, type: 'file', size: 4, headerOffset: 2 * BLOCK });
    expect(file!.data).toEqual(bytes(4, 8));
    expect(link).toMatchObject({ name: `d/${'z'.repeat(120)}`, type: 'symlink', linkname: longLink });
  });

  it('joins the ustar prefix and name', async () => {
    const header = patch(tarHeader({ name: 'file.jpg', size: 2 }), (h) =>
      h.write('Images/n02085620-Chihuahua', 345),
    );
    const tar = Buffer.concat([header, pad(bytes(2, 9)), END_OF_ARCHIVE]);
    const [e] = await readAll(tar);
    expect(e!.name).toBe('Images/n02085620-Chihuahua/file.jpg');
  });

  it('reads old-style v7 headers, where a trailing slash marks a directory', async () => {
    const v7 = (spec: Parameters<typeof tarHeader>[0], flag: string) =>
      patch(tarHeader(spec), (h) => {
        h.fill(0, 257, 265); // no ustar magic or version
        h.write(flag, 156, 1, 'latin1');
      });
    const tar = Buffer.concat([
      v7({ name: 'old/' }, '\0'),
      v7({ name: 'old/a.jpg', size: 3 }, '\0'),
      pad(bytes(3, 10)),
      v7({ name: 'old/b.jpg', size: 1 }, '0'),
      pad(bytes(1, 11)),
      END_OF_ARCHIVE,
    ]);
    const entries = await readAll(tar);
    expect(entries.map((e) => [e.name, e.type, e.size])).toEqual([
      ['old/', 'dir', 0],
      ['old/a.jpg', 'file', 3],
      ['old/b.jpg', 'file', 1],
    ]);
    expect(entries[1]!.data).toEqual(bytes(3, 10));
  });

  it('reports links, devices and other entry types without data', async () => {
    const tar = Buffer.concat([
      tarHeader({ name: 'd/', type: 'dir' }),
      tarHeader({ name: 'd/sym.jpg', type: 'symlink', linkname: '../../etc/passwd' }),
      tarHeader({ name: 'd/hard.jpg', type: 'hardlink', linkname: 'd/real.jpg' }),
      tarHeader({ name: 'd/tty', type: 'chardev' }),
      withFlag(tarHeader({ name: 'd/sda' }), '4'),
      tarHeader({ name: 'd/pipe', type: 'fifo' }),
      withFlag(tarHeader({ name: 'volume label' }), 'V'),
      withFlag(tarHeader({ name: 'd/contig.jpg', size: 2 }), '7'),
      pad(bytes(2, 12)),
      END_OF_ARCHIVE,
    ]);
    const entries = await readAll(tar);
    expect(entries.map((e) => [e.name, e.type, e.linkname, e.data])).toEqual([
      ['d/', 'dir', undefined, undefined],
      ['d/sym.jpg', 'symlink', '../../etc/passwd', undefined],
      ['d/hard.jpg', 'hardlink', 'd/real.jpg', undefined],
      ['d/tty', 'chardev', undefined, undefined],
      ['d/sda', 'blockdev', undefined, undefined],
      ['d/pipe', 'fifo', undefined, undefined],
      ['volume label', 'other', undefined, undefined],
      ['d/contig.jpg', 'file', undefined, bytes(2, 12)],
    ]);
  });

  it('reads GNU base-256 sizes', async () => {
    const header = patch(tarHeader({ name: 'big.jpg' }), (h) => {
      h.fill(0, 124, 136);
      h[124] = 0x80;
      h.writeUInt16BE(600, 134);
    });
    const [e] = await readAll(Buffer.concat([header, pad(bytes(600, 13)), END_OF_ARCHIVE]));
    expect(e!.size).toBe(600);
    expect(e!.data).toEqual(bytes(600, 13));
  });

  describe('end of archive', () => {
    const body = packTar(files).subarray(0, -END_OF_ARCHIVE.length);

    it('accepts a stream that ends after one zero block, and trailing zero records', async () => {
      expect(await readAll(Buffer.concat([body, Buffer.alloc(BLOCK)]))).toHaveLength(4);
      expect(await readAll(Buffer.concat([body, Buffer.alloc(10240)]), 1000)).toHaveLength(4);
    });

    it('reads the whole stream, so a caller hashing the chunks sees every byte', async () => {
      const tar = Buffer.concat([body, Buffer.alloc(10240)]);
      let seen = 0;
      async function* counted() {
        for await (const c of chunked(tar, 1000)) {
          seen += c.length;
          yield c;
        }
      }
      for await (const _ of readTar(counted())) {
        // drain
      }
      expect(seen).toBe(tar.length);
    });

    it('rejects a stream that ends between members without the end marker', async () => {
      const err = await readError(body);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        `the tarball is truncated: it ends at byte offset ${body.length} after member "b/odd.jpg" without the end-of-archive marker (zero blocks); download it again`,
      );
    });

    it('rejects data after the end marker', async () => {
      const tar = Buffer.concat([packTar(files), packTar(files)]);
      const err = await readError(tar);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toContain(
        `data at byte offset ${body.length + 2 * BLOCK}, after its end-of-archive marker`,
      );
    });
  });

  describe('damage', () => {
    const tar = packTar(files);

    it('names the member whose data is cut off', async () => {
      // b/odd.jpg: header at 2560, data at 3072, 1300 bytes + 236 padding.
      const err = await readError(tar.subarray(0, 3072 + 1000), 300);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        'the tarball is truncated: member "b/odd.jpg" needs 1536 bytes (data and padding) from byte offset 3072, but the stream ended at byte offset 4072; download it again',
      );
      const big = await readAll(tar.subarray(0, 3072 + 1000), 300, 100).catch((e: Error) => e);
      expect((big as Error).message).toContain('member "b/odd.jpg" needs 1536 bytes');
    });

    it('names the member before a cut-off header', async () => {
      const err = await readError(tar.subarray(0, 2560 + 100));
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        'the tarball is truncated: the header at byte offset 2560 after member "b/block.jpg" needs 512 bytes, but the stream ended at byte offset 2660; download it again',
      );
    });

    it('rejects a header with a bad checksum, naming the byte offset', async () => {
      const bad = Buffer.from(tar);
      bad[1536 + 5] = 0x41; // inside the name of the third header
      const err = await readError(bad);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toMatch(
        /^the tarball is corrupt at byte offset 1536 \(after member "a\/one\.jpg"\): header checksum mismatch/,
      );
    });

    it('says when the file is a compressed tarball', async () => {
      const err = await readError(gzipSync(packTar([{ name: 'r.jpg', data: randomBytes(2000) }])));
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toContain('corrupt at byte offset 0 (in the first header)');
      expect(err.message).toContain('the file is gzip-compressed, decompress it to a plain .tar first');
    });

    it('rejects a malformed PAX record', async () => {
      const err = await readError(
        Buffer.concat([metaEntry('x', Buffer.from('99 path=x\n')), packTar(files)]),
      );
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toContain('malformed PAX record at byte 0');
    });
  });

  it('closes the source when the consumer stops early', async () => {
    let closed = false;
    async function* source() {
      try {
        yield* chunked(packTar(files), 512);
      } finally {
        closed = true;
      }
    }
    for await (const e of readTar(source())) {
      expect(e.name).toBe('a/empty.jpg');
      break;
    }
    expect(closed).toBe(true);
  });

  describe('archives written by GNU tar', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tar-reader-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const root = join(dir, 'src');
    const longDir = `Images/n02085620-Chihuahua/${'deep-folder-name/'.repeat(7)}`;
    const content: Record<string, Buffer> = {
      'Images/n02085620-Chihuahua/n02085620_10074.jpg': bytes(5000, 14),
      'Images/n02085620-Chihuahua/empty.jpg': Buffer.alloc(0),
      [`${longDir}long-file-name.jpg`]: bytes(1234, 15),
    };
    mkdirSync(join(root, longDir), { recursive: true });
    for (const [name, data] of Object.entries(content)) writeFileSync(join(root, name), data);
    symlinkSync('../../etc/passwd', join(root, 'Images/n02085620-Chihuahua/link.jpg'));

    it.each(['gnu', 'posix', 'ustar'])('reads a --format=%s archive', async (format) => {
      const tarPath = join(dir, `${format}.tar`);
      execFileSync('tar', ['--sort=name', `--format=${format}`, '-cf', tarPath, '-C', root, 'Images']);
      const tar = readFileSync(tarPath);
      const entries = await readAll(tar, 10000);
      const byName = new Map(entries.map((e) => [e.name, e]));
      for (const [name, data] of Object.entries(content)) {
        const e = byName.get(name);
        expect(e, name).toBeDefined();
        expect(e!.type).toBe('file');
        expect(e!.data).toEqual(data);
        expect(tar.subarray(e!.dataOffset, e!.dataOffset + e!.size)).toEqual(data);
      }
      expect(byName.get('Images/n02085620-Chihuahua/link.jpg')).toMatchObject({
        type: 'symlink',
        linkname: '../../etc/passwd',
      });
      expect(byName.get('Images/')?.type).toBe('dir');
      expect(byName.get(longDir)?.type).toBe('dir');
      expect(entries.filter((e) => e.type === 'file')).toHaveLength(3);
    });
  });
});
