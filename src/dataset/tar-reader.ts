import { DataError } from '../errors.ts';
import { BLOCK } from './tar-writer.ts';

// Streaming tar reader: one pass, bounded memory, no extraction. It understands ustar
// (name + prefix), PAX extended headers ('x'; 'g' is skipped), GNU long names ('L', 'K'),
// old-style v7 headers and GNU base-256 sizes. Every entry's size field is honoured, whatever
// its type (GNU tar writes 0 for links and devices).
//
// End of archive: the first all-zero block ends the archive. A stream that stops right after
// that block (the second zero block missing) is accepted: every member is complete by then.
// A stream that stops at a block boundary with no zero block at all is reported as truncated,
// because that is exactly what a download cut between two members looks like.
// The rest of the stream is drained (so a caller hashing the same chunks sees every byte) and
// must be zeros: non-zero bytes there mean a second archive that would be silently ignored.

export type TarEntryKind =
  | 'file'
  | 'dir'
  | 'symlink'
  | 'hardlink'
  | 'chardev'
  | 'blockdev'
  | 'fifo'
  | 'other';

export interface TarEntry {
  /** Full member path (PAX path, GNU long name or ustar prefix/name). */
  name: string;
  type: TarEntryKind;
  /** Data size in bytes. */
  size: number;
  /** Byte offset of the entry's own header block (after any PAX or GNU long-name headers). */
  headerOffset: number;
  /** Byte offset of the entry's data in the tarball. */
  dataOffset: number;
  linkname?: string;
  /** The data, only for files of at most maxEntryBytes. May be a view of a source chunk. */
  data?: Buffer;
}

export interface ReadTarOptions {
  /** Files up to this size come with their bytes in `data`; larger ones are skipped. */
  maxEntryBytes?: number;
  /**
   * What a damaged archive is called and what to do about it, when it is not a dataset tarball
   * (whose messages say to download it again): a shard names its key and the state that writes it.
   */
  archive?: { name: string; remedy: string };
}

/** A damaged archive: what is wrong, and (in the message) what to do about a dataset tarball. */
class TarDamage extends DataError {
  constructor(
    readonly detail: string,
    remedy: string,
  ) {
    super(`${detail}; ${remedy}`);
  }
}

export const DEFAULT_MAX_ENTRY_BYTES = 64 * 1024 * 1024;
/** PAX and GNU long-name payloads are held in memory: cap them so a corrupt size cannot. */
const MAX_META_BYTES = 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

const KINDS: Record<string, TarEntryKind> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: a regular file for every reader
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'dir',
  '6': 'fifo',
  D: 'dir', // GNU dump directory: a directory whose data lists its contents
};

/**
 * Reads tar entries from raw tarball bytes. Every yielded entry is complete (data and padding
 * read). Source chunks must not be reused after they are yielded: `data` may be a view of one.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
  opts: ReadTarOptions = {},
): AsyncGenerator<TarEntry> {
  const maxEntryBytes = opts.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  const input = new ChunkQueue(source[Symbol.asyncIterator]());
  let previous: string | undefined; // last member name, for messages
  let meta: PendingMeta = {};
  try {
    for (;;) {
      const headerOffset = input.offset;
      if (!(await input.fill(BLOCK))) throw missingHeader(input, headerOffset, previous);
      const block = input.take(BLOCK);
      if (block.equals(ZERO_BLOCK)) {
        await drainTrailer(input, headerOffset);
        return;
      }
      const header = parseHeader(block, headerOffset, previous);

      if (META_FLAGS.has(header.flag)) {
        meta = await readMeta(input, header, meta, headerOffset, previous);
        continue;
      }

      const name = meta.path ?? header.name;
      const linkname = meta.linkpath ?? header.linkname;
      previous = name;
      let type = KINDS[header.flag] ?? 'other';
      // v7 archives mark directories only by the trailing slash.
      if (type === 'file' && header.flag !== '7' && !header.ustar && name.endsWith('/')) type = 'dir';

      const size = meta.size ?? header.size;
      const padded = size + padding(size);
      meta = {};
      const dataOffset = input.offset;
      const entry: TarEntry = { name, type, size, headerOffset, dataOffset };
      if (linkname) entry.linkname = linkname;
      if (type === 'file' && size <= maxEntryBytes) {
        await needBytes(input, padded, `member "${name}"`, dataOffset);
        entry.data = input.take(size);
        await input.skip(padded - size);
      } else {
        await skipBytes(input, padded, `member "${name}"`, dataOffset);
      }
      yield entry;
    }
  } catch (err) {
    if (err instanceof TarDamage && opts.archive)
      throw new DataError(`${opts.archive.name}: ${err.detail}; ${opts.archive.remedy}`);
    throw err;
  } finally {
    await input.close();
  }
}

const META_FLAGS = new Set(['x', 'g', 'L', 'K']);

/** Reads a PAX or GNU long-name header's payload into the metadata of the next entry. */
async function readMeta(
  input: ChunkQueue,
  header: Header,
  meta: PendingMeta,
  headerOffset: number,
  previous: string | undefined,
): Promise<PendingMeta> {
  const kind = header.flag === 'x' || header.flag === 'g' ? 'PAX' : 'GNU long-name';
  const what = `the ${kind} header ${previous === undefined ? 'at the start' : `after member "${previous}"`}`;
  const dataOffset = input.offset;
  const padded = header.size + padding(header.size);
  if (header.flag === 'g') {
    // Global PAX headers only carry defaults (mtime, charset) that the index does not use.
    await skipBytes(input, padded, what, dataOffset);
    return meta;
  }
  if (header.size > MAX_META_BYTES)
    throw corrupt(
      headerOffset,
      `${kind} header of ${header.size} bytes (the limit is ${MAX_META_BYTES})`,
      previous,
    );
  await needBytes(input, padded, what, dataOffset);
  const payload = input.take(header.size);
  await input.skip(padded - header.size);
  if (header.flag === 'x') return { ...meta, ...parsePax(payload, headerOffset) };
  const value = cString(payload, 0, header.size);
  return header.flag === 'L' ? { ...meta, path: value } : { ...meta, linkpath: value };
}

interface PendingMeta {
  path?: string;
  linkpath?: string;
  size?: number;
}

interface Header {
  name: string;
  linkname: string;
  size: number;
  flag: string;
  /** POSIX or GNU magic present (else a v7 header). */
  ustar: boolean;
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

function parseHeader(block: Buffer, offset: number, previous: string | undefined): Header {
  verifyChecksum(block, offset, previous);
  const magic = block.toString('latin1', 257, 263);
  const posix = magic === 'ustar\0';
  // GNU's 'ustar  \0' reuses the prefix field for atime/ctime, so only POSIX has a prefix.
  const ustar = posix || magic === 'ustar ';
  let name = cString(block, 0, 100);
  if (posix) {
    const prefix = cString(block, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    linkname: cString(block, 157, 100),
    size: readNumber(block, 124, 12, offset, 'size', previous),
    flag: String.fromCharCode(block[156]!),
    ustar,
  };
}

function verifyChecksum(block: Buffer, offset: number, previous: string | undefined): void {
  const field = block.toString('latin1', 148, 156);
  const stored = /^[ \0]*([0-7]+)[ \0]*$/.exec(field);
  // The sum is taken with the checksum field read as spaces; old writers summed signed bytes.
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i === 148) i = 156;
    const b = block[i]!;
    unsigned += b;
    signed += b < 128 ? b : b - 256;
  }
  const value = stored ? Number.parseInt(stored[1]!, 8) : Number.NaN;
  if (value === unsigned || value === signed) return;
  const hint = offset === 0 ? compressionHint(block) : '';
  throw corrupt(
    offset,
    `header checksum mismatch (stored ${JSON.stringify(field)}, computed ${unsigned.toString(8)})${hint}`,
    previous,
  );
}

/** Explains the most common reason the first header is garbage: a compressed tarball. */
function compressionHint(block: Buffer): string {
  const hex = block.toString('hex', 0, 6);
  const kind = hex.startsWith('1f8b')
    ? 'gzip'
    : hex.startsWith('425a68')
      ? 'bzip2'
      : hex === 'fd377a585a00'
        ? 'xz'
        : hex.startsWith('28b52ffd')
          ? 'zstd'
          : undefined;
  return kind ? `; the file is ${kind}-compressed, decompress it to a plain .tar first` : '';
}

/** Octal (NUL/space terminated) or GNU base-256 (high bit of the first byte set). */
function readNumber(
  block: Buffer,
  at: number,
  length: number,
  offset: number,
  field: string,
  previous: string | undefined,
): number {
  const first = block[at]!;
  if (first & 0x80) {
    if (first === 0xff) throw corrupt(offset, `negative ${field} field`, previous);
    let value = first & 0x7f;
    for (let i = at + 1; i < at + length; i++) value = value * 256 + block[i]!;
    if (!Number.isSafeInteger(value)) throw corrupt(offset, `${field} field too large`, previous);
    return value;
  }
  const text = block.toString('latin1', at, at + length);
  const m = /^[ \0]*([0-7]*)[ \0]*$/.exec(text);
  if (!m) throw corrupt(offset, `${field} field is not an octal number: ${JSON.stringify(text)}`, previous);
  return m[1] ? Number.parseInt(m[1], 8) : 0;
}

/** A NUL-terminated UTF-8 string inside a fixed-width field. */
function cString(buf: Buffer, at: number, length: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('utf8', at, end === -1 || end > at + length ? at + length : end);
}

/** PAX records: "<length> <key>=<value>\n", the length counting the whole record in bytes. */
function parsePax(payload: Buffer, offset: number): PendingMeta {
  const meta: PendingMeta = {};
  let pos = 0;
  while (pos < payload.length) {
    if (payload[pos] === 0) break; // NUL padding after the records
    const space = payload.indexOf(0x20, pos);
    const length = space === -1 ? Number.NaN : Number(payload.toString('latin1', pos, space));
    const end = pos + length;
    if (!Number.isInteger(length) || length <= 0 || end > payload.length || payload[end - 1] !== 0x0a)
      throw corrupt(offset, `malformed PAX record at byte ${pos} of the extended header`, undefined);
    const record = payload.toString('utf8', space + 1, end - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw corrupt(offset, `malformed PAX record ${JSON.stringify(record)}`, undefined);
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') meta.path = value;
    else if (key === 'linkpath') meta.linkpath = value;
    else if (key === 'size') {
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
        throw corrupt(offset, `PAX size ${JSON.stringify(value)} is not a byte count`, undefined);
      meta.size = Number(value);
    }
    pos = end;
  }
  return meta;
}

function corrupt(offset: number, detail: string, previous: string | undefined): DataError {
  const where = previous === undefined ? 'in the first header' : `after member "${previous}"`;
  return new TarDamage(
    `the tarball is corrupt at byte offset ${offset} (${where}): ${detail}`,
    'download it again or recreate it',
  );
}

function truncated(detail: string): DataError {
  return new TarDamage(`the tarball is truncated: ${detail}`, 'download it again');
}

function missingHeader(input: ChunkQueue, offset: number, previous: string | undefined): DataError {
  const after = previous === undefined ? '' : ` after member "${previous}"`;
  if (input.buffered === 0)
    return truncated(
      `it ends at byte offset ${offset}${after} without the end-of-archive marker (zero blocks)`,
    );
  return truncated(
    `the header at byte offset ${offset}${after} needs ${BLOCK} bytes, but the stream ended at byte offset ${offset + input.buffered}`,
  );
}

async function needBytes(input: ChunkQueue, n: number, what: string, offset: number): Promise<void> {
  if (await input.fill(n)) return;
  throw truncated(
    `${what} needs ${n} bytes (data and padding) from byte offset ${offset}, but the stream ended at byte offset ${offset + input.buffered}`,
  );
}

async function skipBytes(input: ChunkQueue, n: number, what: string, offset: number): Promise<void> {
  const skipped = await input.skip(n);
  if (skipped === n) return;
  throw truncated(
    `${what} needs ${n} bytes (data and padding) from byte offset ${offset}, but the stream ended at byte offset ${offset + skipped}`,
  );
}

/** Reads to the end of the stream after the first zero block; only zeros may follow. */
async function drainTrailer(input: ChunkQueue, markerOffset: number): Promise<void> {
  for (;;) {
    const start = input.offset;
    const chunk = await input.next();
    if (!chunk) return;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== 0)
        throw new TarDamage(
          `the tarball has data at byte offset ${start + i}, after its end-of-archive marker at byte offset ${markerOffset} (two archives concatenated?)`,
          'repack all images into one tarball',
        );
    }
  }
}

/**
 * The unread part of the stream as a list of chunks: bytes are handed out as views when they
 * lie in one chunk and copied once otherwise; skipped bytes are never copied.
 */
class ChunkQueue {
  private readonly chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private head = 0;
  private ended = false;
  /** Bytes held in chunks, from head on. */
  buffered = 0;
  /** Absolute offset of the next unread byte. */
  offset = 0;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Makes n bytes available; false when the stream ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      const chunk = await this.pull();
      if (!chunk) return false;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return true;
  }

  /** Takes n available bytes (call fill first). */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const view = first.subarray(this.head, this.head + n);
      this.consume(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const k = Math.min(chunk.length - this.head, n - filled);
      chunk.copy(out, filled, this.head, this.head + k);
      filled += k;
      this.consume(k);
    }
    return out;
  }

  /** Skips up to n bytes, pulling chunks as needed; returns how many were skipped. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) break;
      const k = Math.min(this.chunks[0]!.length - this.head, left);
      this.consume(k);
      left -= k;
    }
    return n - left;
  }

  /** The rest of the current chunk, or the next chunk from the source; undefined at the end. */
  async next(): Promise<Buffer | undefined> {
    if (this.buffered > 0) return this.take(this.chunks[0]!.length - this.head);
    const chunk = await this.pull();
    if (chunk) this.offset += chunk.length;
    return chunk;
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.source.return?.();
    }
  }

  private async pull(): Promise<Buffer | undefined> {
    while (!this.ended) {
      const r = await this.source.next();
      if (r.done) {
        this.ended = true;
        return undefined;
      }
      const c = r.value;
      if (c.length > 0) return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
    }
    return undefined;
  }

  /** Advances within chunks[0]; n must not exceed what is left in it. */
  private consume(n: number): void {
    this.head += n;
    this.buffered -= n;
    this.offset += n;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
