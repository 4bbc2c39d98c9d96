import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { sniffImage } from '../src/dataset/image-sniff.ts';

const canvas = (channels: 3 | 4 = 3) =>
  sharp({
    create: {
      width: 40,
      height: 30,
      channels,
      background: channels === 3 ? '#804020' : { r: 128, g: 64, b: 32, alpha: 0.5 },
    },
  });

const jpeg = await canvas().jpeg().toBuffer();
const png = await canvas().png().toBuffer();
// Noise compresses badly, so most of this JPEG is entropy-coded data.
const noisy = await sharp(randomBytes(128 * 96 * 3), { raw: { width: 128, height: 96, channels: 3 } })
  .jpeg()
  .toBuffer();

/** Offset of the first SOF0/SOF2 segment's marker in a JPEG. */
function sofOffset(data: Buffer): number {
  for (let i = 2; i < data.length - 1; i++)
    if (data[i] === 0xff && (data[i + 1] === 0xc0 || data[i + 1] === 0xc2)) return i;
  throw new Error('no SOF');
}

describe('sniffImage', () => {
  it('reads JPEG dimensions (baseline and progressive)', async () => {
    expect(sniffImage(jpeg)).toEqual({ ok: true, format: 'jpeg', width: 40, height: 30 });
    const tall = await sharp({ create: { width: 7, height: 300, channels: 3, background: '#000' } })
      .jpeg({ progressive: true })
      .toBuffer();
    expect(tall[sofOffset(tall) + 1]).toBe(0xc2);
    expect(sniffImage(tall)).toEqual({ ok: true, format: 'jpeg', width: 7, height: 300 });
  });

  it('walks past APP segments such as EXIF', async () => {
    const withExif = await canvas()
      .jpeg()
      .withExif({ IFD0: { Copyright: 'x'.repeat(2000) } })
      .toBuffer();
    expect(withExif.indexOf('Exif')).toBeGreaterThan(0);
    expect(sniffImage(withExif)).toEqual({ ok: true, format: 'jpeg', width: 40, height: 30 });
  });

  it('reads PNG and WebP (VP8, VP8L, VP8X) dimensions', async () => {
    expect(sniffImage(png)).toEqual({ ok: true, format: 'png', width: 40, height: 30 });
    const webps = {
      'VP8 ': await canvas().webp().toBuffer(),
      VP8L: await canvas().webp({ lossless: true }).toBuffer(),
      VP8X: await canvas(4).webp().toBuffer(),
    };
    for (const [chunk, data] of Object.entries(webps)) {
      expect(data.toString('latin1', 12, 16)).toBe(chunk);
      expect(sniffImage(data)).toEqual({ ok: true, format: 'webp', width: 40, height: 30 });
    }
  });

  it('rejects empty files', () => {
    expect(sniffImage(Buffer.alloc(0))).toEqual({ ok: false, reason: 'empty file (0 bytes)' });
  });

  it('says what non-image content looks like', () => {
    expect(sniffImage(Buffer.from('hello world\nthis is a text file'))).toEqual({
      ok: false,
      reason: 'not an image: looks like text ("hello world\\nthis is a text file")',
    });
    expect(sniffImage(Buffer.from('  <!DOCTYPE html><html><body>403 Forbidden</body></html>'))).toEqual({
      ok: false,
      reason: 'not an image: looks like an HTML page (an error page saved under an image name?)',
    });
    expect(sniffImage(Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))).toEqual({
      ok: false,
      reason: 'not an image: content starts with 0001020304050607',
    });
    expect(sniffImage(Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00', 'latin1'))).toEqual({
      ok: false,
      reason: 'unsupported image format GIF',
    });
  });

  describe('damaged JPEG', () => {
    it('reports a JPEG cut off in its image data', () => {
      expect(noisy.length).toBeGreaterThan(3000);
      expect(sniffImage(noisy)).toEqual({ ok: true, format: 'jpeg', width: 128, height: 96 });
      for (const cut of [noisy.length >> 1, noisy.length - 1500, noisy.length - 1]) {
        expect(sniffImage(noisy.subarray(0, cut))).toEqual({
          ok: false,
          reason: 'truncated JPEG (no end-of-image marker)',
        });
      }
      expect(sniffImage(jpeg.subarray(0, jpeg.length - 1))).toEqual({
        ok: false,
        reason: 'truncated JPEG (no end-of-image marker)',
      });
    });

    it('reports a JPEG cut off in its headers', () => {
      const sof = sofOffset(jpeg);
      expect(sniffImage(jpeg.subarray(0, sof + 6))).toEqual({
        ok: false,
        reason: `truncated JPEG (segment FFC0 at byte ${sof} runs past the end of the file)`,
      });
      expect(sniffImage(jpeg.subarray(0, 2))).toEqual({
        ok: false,
        reason: 'truncated JPEG (ends before the image data)',
      });
    });

    it('rejects zero dimensions and missing frame or scan', () => {
      const sof = sofOffset(jpeg);
      const zero = Buffer.from(jpeg);
      zero.writeUInt16BE(0, sof + 7); // width
      expect(sniffImage(zero)).toEqual({ ok: false, reason: 'invalid JPEG: image size 0x30' });
      const noScan = Buffer.from('ffd8ffe000104a46494600010100000100010000ffd9', 'hex');
      expect(sniffImage(noScan)).toEqual({
        ok: false,
        reason: 'corrupt JPEG: end-of-image marker before any image data',
      });
      const garbage = Buffer.concat([jpeg.subarray(0, 4), Buffer.from([0, 0])]);
      expect(sniffImage(garbage)).toMatchObject({ ok: false });
    });

    it('accepts bytes after the end-of-image marker, with a note unless they are zero padding', () => {
      expect(sniffImage(Buffer.concat([jpeg, Buffer.alloc(16)]))).toEqual({
        ok: true,
        format: 'jpeg',
        width: 40,
        height: 30,
      });
      expect(sniffImage(Buffer.concat([jpeg, Buffer.from('trailer')]))).toEqual({
        ok: true,
        format: 'jpeg',
        width: 40,
        height: 30,
        note: '7 bytes after the JPEG end marker (ignored)',
      });
      // Beyond the fast-path window the whole scan is searched.
      const far = Buffer.concat([jpeg, Buffer.alloc(5000, 0x41)]);
      expect(sniffImage(far)).toMatchObject({
        ok: true,
        note: '5000 bytes after the JPEG end marker (ignored)',
      });
    });
  });

  describe('damaged PNG and WebP', () => {
    it('reports a PNG without IEND or cut inside a chunk', () => {
      expect(sniffImage(png.subarray(0, png.length - 12))).toEqual({
        ok: false,
        reason: 'truncated PNG (no IEND chunk)',
      });
      const idat = png.indexOf('IDAT') - 4;
      expect(sniffImage(png.subarray(0, idat + 20))).toEqual({
        ok: false,
        reason: `truncated PNG (chunk IDAT at byte ${idat} runs past the end of the file)`,
      });
      expect(sniffImage(png.subarray(0, 20))).toEqual({
        ok: false,
        reason: 'corrupt PNG: no IHDR header chunk',
      });
    });

    it('reports a truncated WebP', async () => {
      const webp = await canvas().webp().toBuffer();
      expect(sniffImage(webp.subarray(0, 50))).toEqual({
        ok: false,
        reason: `truncated WebP (the RIFF header says ${webp.length} bytes, the file has 50)`,
      });
    });
  });
});
