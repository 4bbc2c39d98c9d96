import { isUtf8 } from 'node:buffer';
import type { ImageFormat } from '../types.ts';

// Header-only image check, cheap enough to run on every image while the tarball streams by:
// container structure and dimensions, and whether the end marker is there (the usual damage is
// a cut-off file). Pixel data is not decoded; preprocessing decodes later.
//
// Bytes after the end marker (camera trailers, a second picture in multi-picture JPEGs,
// padding) do not stop a decoder, so they are accepted; non-zero ones earn a note.

export type SniffResult =
  | { ok: true; format: ImageFormat; width: number; height: number; note?: string }
  | { ok: false; reason: string };

export function sniffImage(data: Buffer): SniffResult {
  if (data.length === 0) return fail('empty file (0 bytes)');
  if (data[0] === 0xff && data[1] === 0xd8) return sniffJpeg(data);
  if (data.length >= 8 && data.readUInt32BE(0) === 0x89504e47 && data.readUInt32BE(4) === 0x0d0a1a0a)
    return sniffPng(data);
  if (
    data.length >= 12 &&
    data.toString('latin1', 0, 4) === 'RIFF' &&
    data.toString('latin1', 8, 12) === 'WEBP'
  )
    return sniffWebp(data);
  return fail(notAnImage(data));
}

function fail(reason: string): SniffResult {
  return { ok: false, reason };
}

function image(format: ImageFormat, width: number, height: number, trailing: Buffer): SniffResult {
  const name = format.toUpperCase();
  if (width === 0 || height === 0) return fail(`invalid ${name}: image size ${width}x${height}`);
  const result: SniffResult = { ok: true, format, width, height };
  if (trailing.some((b) => b !== 0))
    result.note = `${trailing.length} bytes after the ${name} end marker (ignored)`;
  return result;
}

// JPEG: SOI, then marker segments up to the first SOS; the SOFn segment gives the size.
// The entropy-coded data after SOS cannot contain FF D9 (a data FF is always followed by 00
// or a restart marker), so the first FF D9 after SOS is the end of the image.
function sniffJpeg(data: Buffer): SniffResult {
  let pos = 2;
  let size: { width: number; height: number } | undefined;
  let scan = -1; // where the entropy-coded data starts
  while (scan === -1) {
    if (pos >= data.length) return fail('truncated JPEG (ends before the image data)');
    if (data[pos] !== 0xff) return fail(`corrupt JPEG: expected a marker at byte ${pos}`);
    while (data[pos] === 0xff) pos++; // fill bytes may precede a marker
    if (pos >= data.length) return fail('truncated JPEG (ends before the image data)');
    const marker = data[pos]!;
    pos++;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length field
    if (marker === 0xd9) return fail('corrupt JPEG: end-of-image marker before any image data');
    if (pos + 2 > data.length) return fail('truncated JPEG (ends inside a segment header)');
    const length = data.readUInt16BE(pos);
    const hex = marker.toString(16).toUpperCase();
    if (length < 2) return fail(`corrupt JPEG: segment FF${hex} at byte ${pos - 2} has length ${length}`);
    if (pos + length > data.length)
      return fail(`truncated JPEG (segment FF${hex} at byte ${pos - 2} runs past the end of the file)`);
    if (isStartOfFrame(marker)) {
      if (length < 8) return fail(`corrupt JPEG: frame header FF${hex} is too short`);
      size = { height: data.readUInt16BE(pos + 3), width: data.readUInt16BE(pos + 5) };
    }
    pos += length;
    if (marker === 0xda) scan = pos;
  }
  if (!size) return fail('corrupt JPEG: no frame header (SOF) before the image data');
  // Fast path: the marker is normally among the last bytes; search all the data only if not.
  const windowStart = Math.max(scan, data.length - 1024);
  const inWindow = data.subarray(windowStart).lastIndexOf(EOI);
  const eoi = inWindow === -1 ? data.indexOf(EOI, scan) : windowStart + inWindow;
  if (eoi === -1) return fail('truncated JPEG (no end-of-image marker)');
  return image('jpeg', size.width, size.height, data.subarray(eoi + 2));
}

const EOI = Buffer.from([0xff, 0xd9]);

/** SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC) which share the range. */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

// PNG: signature, IHDR first, then chunks (length, type, data, CRC) up to IEND.
function sniffPng(data: Buffer): SniffResult {
  if (data.length < 33 || data.toString('latin1', 12, 16) !== 'IHDR')
    return fail('corrupt PNG: no IHDR header chunk');
  const width = data.readUInt32BE(16);
  const height = data.readUInt32BE(20);
  let pos = 8;
  while (pos + 8 <= data.length) {
    const length = data.readUInt32BE(pos);
    const type = data.toString('latin1', pos + 4, pos + 8);
    const next = pos + 12 + length;
    if (next > data.length)
      return fail(`truncated PNG (chunk ${type} at byte ${pos} runs past the end of the file)`);
    if (type === 'IEND') return image('png', width, height, data.subarray(next));
    pos = next;
  }
  return fail('truncated PNG (no IEND chunk)');
}

// WebP: RIFF container; the first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended).
function sniffWebp(data: Buffer): SniffResult {
  const declared = 8 + data.readUInt32LE(4);
  if (data.length < declared)
    return fail(`truncated WebP (the RIFF header says ${declared} bytes, the file has ${data.length})`);
  if (data.length < 30) return fail('corrupt WebP: no image chunk');
  const chunk = data.toString('latin1', 12, 16);
  let width: number;
  let height: number;
  if (chunk === 'VP8 ') {
    if (data.readUIntBE(23, 3) !== 0x9d012a) return fail('corrupt WebP: bad VP8 frame start code');
    width = data.readUInt16LE(26) & 0x3fff;
    height = data.readUInt16LE(28) & 0x3fff;
  } else if (chunk === 'VP8L') {
    if (data[20] !== 0x2f) return fail('corrupt WebP: bad VP8L signature');
    const bits = data.readUInt32LE(21);
    width = (bits & 0x3fff) + 1;
    height = ((bits >>> 14) & 0x3fff) + 1;
  } else if (chunk === 'VP8X') {
    width = data.readUIntLE(24, 3) + 1;
    height = data.readUIntLE(27, 3) + 1;
  } else {
    return fail(`corrupt WebP: unknown first chunk ${JSON.stringify(chunk)}`);
  }
  // RIFF chunks are padded to even sizes, so one extra byte is part of the file.
  return image('webp', width, height, data.subarray(declared + (declared % 2)));
}

/** Says what the bytes look like instead: text, an HTML page (a saved error page), or hex. */
function notAnImage(data: Buffer): string {
  const head = data.subarray(0, 512);
  if (looksLikeText(head, data.length > head.length)) {
    const text = head.toString('utf8').replace(/^\uFEFF/, '');
    if (/^\s*<(!doctype html|html|head|body)/i.test(text))
      return 'not an image: looks like an HTML page (an error page saved under an image name?)';
    const excerpt = text.trim().slice(0, 40);
    return `not an image: looks like text (${JSON.stringify(excerpt)}${text.trim().length > 40 ? '…' : ''})`;
  }
  for (const [magic, name] of OTHER_FORMATS) {
    if (head.subarray(0, magic.length).equals(magic)) return `unsupported image format ${name}`;
  }
  return `not an image: content starts with ${data.toString('hex', 0, 8)}`;
}

function looksLikeText(head: Buffer, cut: boolean): boolean {
  if (!head.every((b) => b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b !== 0x7f))) return false;
  let end = head.length;
  if (cut) {
    // The excerpt may end inside a multi-byte character: leave that character out.
    while (end > 0 && (head[end - 1]! & 0xc0) === 0x80) end--;
    if (end > 0 && head[end - 1]! >= 0xc0) end--;
  }
  return isUtf8(head.subarray(0, end));
}

// Real image formats the pipeline does not take: say which, rather than "not an image".
const OTHER_FORMATS: [Buffer, string][] = [
  [Buffer.from('GIF8'), 'GIF'],
  [Buffer.from('BM'), 'BMP'],
  [Buffer.from([0x49, 0x49, 0x2a, 0x00]), 'TIFF'],
  [Buffer.from([0x4d, 0x4d, 0x00, 0x2a]), 'TIFF'],
];
