import { Readable } from 'node:stream';

// Deterministic ustar writer: fixed mtime, owner and mode, so the same entries always give
// the same bytes (retried shards and regenerated samples are byte-identical).
// Names that do not fit ustar's 100 (+155 prefix) bytes, or are not ASCII, get a PAX header.

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'fifo';

export interface TarHeaderSpec {
  name: string;
  size?: number;
  type?: TarEntryType;
  linkname?: string;
  mode?: number;
  mtime?: number;
}

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  dir: '5',
  fifo: '6',
};

export const BLOCK = 512;

function writeString(buf: Buffer, value: string, offset: number, length: number): void {
  buf.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'utf8');
}

function writeOctal(buf: Buffer, value: number, offset: number, length: number): void {
  buf.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}

function needsPax(name: string): boolean {
  return Buffer.byteLength(name) > 100 || /[^\x20-\x7e]/.test(name);
}

function paxRecord(key: string, value: string): string {
  // The length prefix counts itself, so find the fixed point.
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function rawHeader(spec: TarHeaderSpec, typeflag: string, name: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, name, 0, 100);
  writeOctal(h, spec.mode ?? (spec.type === 'dir' ? 0o755 : 0o644), 100, 8);
  writeOctal(h, 0, 108, 8); // uid
  writeOctal(h, 0, 116, 8); // gid
  writeOctal(h, spec.size ?? 0, 124, 12);
  writeOctal(h, spec.mtime ?? 0, 136, 12);
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder: spaces while summing
  h.write(typeflag, 156, 1, 'ascii');
  if (spec.linkname) writeString(h, spec.linkname, 157, 100);
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** Header block(s) for one entry: a PAX extended header first when the name needs it. */
export function tarHeader(spec: TarHeaderSpec): Buffer {
  const type = spec.type ?? 'file';
  const flag = TYPEFLAG[type];
  if (!needsPax(spec.name)) return rawHeader(spec, flag, spec.name);
  const pax = Buffer.from(paxRecord('path', spec.name), 'utf8');
  const paxHeader = rawHeader({ name: 'PaxHeader', size: pax.length, mode: 0o644 }, 'x', 'PaxHeader');
  const shortName = Buffer.from(spec.name, 'utf8').subarray(0, 100).toString('latin1');
  return Buffer.concat([paxHeader, pad(pax), rawHeader(spec, flag, shortName)]);
}

/** The data padded with zeros to a whole number of blocks. */
export function pad(data: Buffer): Buffer {
  const rest = data.length % BLOCK;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rest)]);
}

export function paddingFor(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

export interface TarFile {
  name: string;
  data: Buffer;
}

/** A whole archive in memory: for shards (bounded by the shard size) and test fixtures. */
export function packTar(files: Iterable<TarFile>): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) parts.push(tarHeader({ name: f.name, size: f.data.length }), pad(f.data));
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** A streamed archive: one file's bytes in memory at a time, whatever the total size. */
export function tarStream(files: AsyncIterable<TarFile> | Iterable<TarFile>): Readable {
  async function* blocks(): AsyncGenerator<Buffer> {
    for await (const f of files) {
      yield tarHeader({ name: f.name, size: f.data.length });
      yield f.data;
      const p = paddingFor(f.data.length);
      if (p.length) yield p;
    }
    yield END_OF_ARCHIVE;
  }
  return Readable.from(blocks(), { objectMode: false });
}
