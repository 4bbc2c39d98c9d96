import sharp, { type Sharp } from 'sharp';
import { describe, expect, it } from 'vitest';
import { DataError, InputError } from '../src/errors.ts';
import { preprocessImage, resizedSize } from '../src/imaging/preprocess-image.ts';
import { mulberry32 } from '../src/util/prng.ts';

type Rgb = [number, number, number];

/** A raw RGB image whose left half is `left` and right half is `right`. */
function halves(width: number, height: number, left: Rgb, right: Rgb = left): Sharp {
  const buf = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) buf.set(x < width / 2 ? left : right, (y * width + x) * 3);
  }
  return sharp(buf, { raw: { width, height, channels: 3 } });
}

/** Textured content, so a JPEG of it has a long entropy-coded body to cut. */
function noisy(width: number, height: number, seed = 1): Sharp {
  const rand = mulberry32(seed);
  const buf = Buffer.alloc(width * height * 3);
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
  return sharp(buf, { raw: { width, height, channels: 3 } });
}

interface Region {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Per-channel means of the whole image or of a region (stats() alone ignores extract()). */
async function meanRgb(jpeg: Buffer, region?: Region): Promise<number[]> {
  const img = region ? sharp(await sharp(jpeg).extract(region).png().toBuffer()) : sharp(jpeg);
  const stats = await img.stats();
  return stats.channels.map((c) => c.mean);
}

async function expectDataError(promise: Promise<unknown>, ...fragments: RegExp[]): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataError);
  const message = (err as DataError).message;
  for (const f of fragments) expect(message).toMatch(f);
}

const run = (data: Buffer, resizeShorter = 64, extra: { maxPixels?: number; quality?: number } = {}) =>
  preprocessImage(data, { resizeShorter, name: 'n02085620-Chihuahua/n02085620_7.jpg', ...extra });

describe('resizedSize', () => {
  it('follows torchvision Resize(n): shorter side n, longer side truncated', () => {
    expect(resizedSize(500, 375, 256)).toEqual({ width: 341, height: 256 });
    expect(resizedSize(375, 500, 256)).toEqual({ width: 256, height: 341 });
    expect(resizedSize(300, 300, 256)).toEqual({ width: 256, height: 256 });
    expect(resizedSize(100, 80, 256)).toEqual({ width: 320, height: 256 });
  });
});

describe('preprocessImage geometry', () => {
  it.each([
    ['landscape', 400, 300, 341, 256],
    ['portrait', 300, 500, 256, 426],
    ['upscaled', 100, 80, 320, 256],
  ])('%s %i×%i → %i×%i', async (_label, w, h, ow, oh) => {
    const input = await halves(w, h, [200, 40, 40], [40, 40, 200]).jpeg().toBuffer();
    const out = await run(input, 256);
    expect(out).toMatchObject({ width: ow, height: oh, sourceWidth: w, sourceHeight: h });
    expect(Math.min(out.width, out.height)).toBe(256);
    expect(Math.abs(out.width / out.height - w / h) * Math.min(out.width, out.height)).toBeLessThanOrEqual(1);
    const meta = await sharp(out.jpeg).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels, meta.space]).toEqual([
      'jpeg',
      ow,
      oh,
      3,
      'srgb',
    ]);
  });

  it('applies EXIF orientation 6 (rotate 90° clockwise) before measuring and resizing', async () => {
    // Stored 300×200, left half red: displayed 200×300 with red on top.
    const input = await halves(300, 200, [220, 0, 0], [0, 0, 220])
      .withMetadata({ orientation: 6 })
      .jpeg()
      .toBuffer();
    expect((await sharp(input).metadata()).orientation).toBe(6);
    const out = await run(input, 100);
    expect(out).toMatchObject({ sourceWidth: 200, sourceHeight: 300, width: 100, height: 150 });
    const [topR, , topB] = await meanRgb(out.jpeg, { left: 0, top: 0, width: 100, height: 60 });
    const [bottomR, , bottomB] = await meanRgb(out.jpeg, { left: 0, top: 90, width: 100, height: 60 });
    expect(topR).toBeGreaterThan(180);
    expect(topB).toBeLessThan(40);
    expect(bottomB).toBeGreaterThan(180);
    expect(bottomR).toBeLessThan(40);
    expect((await sharp(out.jpeg).metadata()).orientation).toBeUndefined();
  });
});

describe('preprocessImage colour handling', () => {
  it('turns grayscale JPEG into 3-channel sRGB with equal channels', async () => {
    const input = await halves(120, 80, [100, 100, 100]).toColourspace('b-w').jpeg().toBuffer();
    expect((await sharp(input).metadata()).channels).toBe(1);
    const out = await run(input);
    const meta = await sharp(out.jpeg).metadata();
    expect([meta.channels, meta.space]).toEqual([3, 'srgb']);
    for (const m of await meanRgb(out.jpeg)) expect(m).toBeCloseTo(100, -0.5);
  });

  it.each([
    ['without ICC profile', false],
    ['with ICC profile', true],
  ])('converts CMYK JPEG %s to 3-channel sRGB of the right colour', async (_label, icc) => {
    let img = halves(120, 80, [200, 50, 50]).toColourspace('cmyk');
    if (icc) img = img.withIccProfile('cmyk');
    const input = await img.jpeg().toBuffer();
    const inMeta = await sharp(input).metadata();
    expect([inMeta.space, inMeta.channels, inMeta.hasProfile]).toEqual(['cmyk', 4, icc]);
    const out = await run(input);
    const meta = await sharp(out.jpeg).metadata();
    expect([meta.channels, meta.space, meta.hasProfile]).toEqual([3, 'srgb', false]);
    const [r, g, b] = await meanRgb(out.jpeg);
    expect(r).toBeGreaterThan(170);
    expect(g).toBeLessThan(80);
    expect(b).toBeLessThan(80);
  });

  it('flattens RGBA PNG onto white', async () => {
    const rgba = Buffer.alloc(60 * 40 * 4);
    for (let i = 0; i < 60 * 40; i++) rgba.set([0, 0, 0, i % 60 < 30 ? 0 : 128], i * 4);
    const input = await sharp(rgba, { raw: { width: 60, height: 40, channels: 4 } })
      .png()
      .toBuffer();
    const out = await run(input, 40);
    expect((await sharp(out.jpeg).metadata()).channels).toBe(3);
    const left = await meanRgb(out.jpeg, { left: 0, top: 0, width: 20, height: 40 });
    const right = await meanRgb(out.jpeg, { left: 40, top: 0, width: 20, height: 40 });
    for (const m of left) expect(m).toBeGreaterThan(250); // transparent → white
    for (const m of right) expect(Math.abs(m - 127.5)).toBeLessThan(4); // half black over white
  });

  it.each([
    ['16-bit PNG', () => halves(60, 40, [200, 50, 50]).toColourspace('rgb16').png().toBuffer()],
    ['palette PNG', () => halves(60, 40, [200, 50, 50]).png({ palette: true }).toBuffer()],
    ['WebP', () => halves(60, 40, [200, 50, 50]).webp({ lossless: true }).toBuffer()],
  ])('decodes %s to 8-bit sRGB of the same colour', async (_label, make) => {
    const out = await run(await make(), 40);
    const meta = await sharp(out.jpeg).metadata();
    expect([meta.channels, meta.space, meta.depth]).toEqual([3, 'srgb', 'uchar']);
    const [r, g, b] = await meanRgb(out.jpeg);
    expect(Math.abs(r! - 200)).toBeLessThan(4);
    expect(Math.abs(g! - 50)).toBeLessThan(4);
    expect(Math.abs(b! - 50)).toBeLessThan(4);
  });

  it('accepts PNG bytes under a .jpg name (content decides, not the name)', async () => {
    const input = await halves(80, 60, [10, 200, 10]).png().toBuffer();
    const out = await preprocessImage(input, { resizeShorter: 30, name: 'Images/x/actually-png.jpg' });
    expect(out).toMatchObject({ width: 40, height: 30, sourceWidth: 80, sourceHeight: 60 });
    expect((await sharp(out.jpeg).metadata()).format).toBe('jpeg');
  });
});

describe('preprocessImage output', () => {
  it('is deterministic, baseline, metadata-free and honours quality', async () => {
    const input = await noisy(320, 240).withMetadata({ orientation: 1 }).jpeg({ quality: 95 }).toBuffer();
    const a = await run(input, 128);
    const b = await run(input, 128);
    expect(a.jpeg.equals(b.jpeg)).toBe(true);
    const meta = await sharp(a.jpeg).metadata();
    expect(meta.isProgressive).toBe(false);
    expect(meta.exif).toBeUndefined();
    expect(meta.icc).toBeUndefined();
    const low = await run(input, 128, { quality: 30 });
    expect(low.jpeg.length).toBeLessThan(a.jpeg.length / 2);
  });
});

describe('preprocessImage errors', () => {
  it('rejects a truncated JPEG instead of gray-filling it', async () => {
    const whole = await noisy(300, 200).jpeg({ quality: 90 }).toBuffer();
    await run(whole); // the untruncated image is fine
    await expectDataError(
      run(whole.subarray(0, Math.floor(whole.length * 0.6))),
      /n02085620_7\.jpg/,
      /truncated/,
    );
  });

  it('accepts a JPEG that only carries a libjpeg warning (extraneous bytes before a marker)', async () => {
    const whole = await noisy(120, 80).jpeg().toBuffer();
    const sos = whole.indexOf(Buffer.from([0xff, 0xda]));
    const odd = Buffer.concat([whole.subarray(0, sos), Buffer.from([1, 2, 3]), whole.subarray(sos)]);
    await expect(sharp(odd).jpeg().toBuffer()).rejects.toThrow(/extraneous bytes/); // sharp's default failOn
    await expect(run(odd)).resolves.toMatchObject({ sourceWidth: 120, sourceHeight: 80 });
  });

  it('rejects a JPEG cut inside its header', async () => {
    const whole = await noisy(300, 200).jpeg().toBuffer();
    await expectDataError(run(whole.subarray(0, 100)), /n02085620_7\.jpg/, /corrupt or truncated/);
  });

  it('rejects random bytes and empty data', async () => {
    const rand = mulberry32(7);
    const junk = Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rand() * 256)));
    await expectDataError(run(junk), /n02085620_7\.jpg/, /not a recognised image/);
    await expectDataError(run(Buffer.alloc(0)), /n02085620_7\.jpg/, /empty file/);
  });

  it('rejects images over the pixel limit from the header, naming the dimensions and limit', async () => {
    const input = await halves(200, 200, [1, 2, 3]).jpeg().toBuffer();
    await expectDataError(
      run(input, 64, { maxPixels: 10_000 }),
      /too many pixels: 200×200 = 40000 > limit 10000/,
    );
    await expect(run(input, 64, { maxPixels: 40_000 })).resolves.toMatchObject({ width: 64 });
  });

  it('rejects an aspect ratio whose resized output would be a bomb', async () => {
    const input = await halves(2000, 1, [1, 2, 3]).png().toBuffer();
    await expectDataError(run(input, 256, { maxPixels: 1_000_000 }), /aspect ratio too extreme/);
  });

  it('rejects formats other than JPEG, PNG and WebP', async () => {
    const gif = await halves(30, 20, [9, 9, 9]).gif().toBuffer();
    await expectDataError(run(gif), /n02085620_7\.jpg/, /unsupported format gif/);
  });

  it('rejects bad options as InputError', async () => {
    const input = await halves(30, 20, [9, 9, 9]).jpeg().toBuffer();
    await expect(run(input, 0)).rejects.toBeInstanceOf(InputError);
    await expect(run(input, 64, { quality: 101 })).rejects.toBeInstanceOf(InputError);
    await expect(run(input, 64, { maxPixels: 0 })).rejects.toBeInstanceOf(InputError);
  });
});
