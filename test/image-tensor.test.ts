import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DataError } from '../src/errors.ts';
import { evalView, normalise, trainView } from '../src/model/image-tensor.ts';
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../src/model/types.ts';
import { mulberry32 } from '../src/util/prng.ts';

const spec: PreprocessSpec = {
  resizeShorter: 8,
  cropSize: 4,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.25, 0.5],
  layout: 'NCHW',
  channelOrder: 'RGB',
};

describe('normalise', () => {
  // a 4×4 image whose pixels are (255, 0, 51) everywhere
  const rgb = Buffer.alloc(4 * 4 * 3);
  for (let i = 0; i < 16; i++) rgb.set([255, 0, 51], i * 3);

  it('writes planar NCHW in RGB order: (x/255 − mean) / std', () => {
    const t = normalise(rgb, spec);
    expect(t.length).toBe(48);
    expect(t[0]).toBeCloseTo((1 - 0.5) / 0.5, 6);
    expect(t[16]).toBeCloseTo((0 - 0.5) / 0.25, 6);
    expect(t[32]).toBeCloseTo((0.2 - 0.5) / 0.5, 6);
  });

  it('writes interleaved NHWC, and swaps channels for BGR models', () => {
    const nhwc = normalise(rgb, { ...spec, layout: 'NHWC' });
    expect([nhwc[0], nhwc[1], nhwc[2]].map((v) => Number(v!.toFixed(4)))).toEqual([1, -2, -0.6]);
    const bgr = normalise(rgb, { ...spec, layout: 'NHWC', channelOrder: 'BGR' });
    // channel 0 is now blue (51) with channel 0's mean/std
    expect(bgr[0]).toBeCloseTo((0.2 - 0.5) / 0.5, 6);
    expect(bgr[2]).toBeCloseTo((1 - 0.5) / 0.5, 6);
  });

  it('gives every byte value the float32 of (x/255 − mean) / std computed directly, to the bit', () => {
    const s = 16; // 256 pixels: pixel i holds (i, 255 − i, i ^ 0x5a)
    const all = Buffer.alloc(s * s * 3);
    for (let i = 0; i < s * s; i++) all.set([i, 255 - i, i ^ 0x5a], i * 3);
    const odd: PreprocessSpec = {
      ...spec,
      cropSize: s,
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
    };
    const t = normalise(all, odd);
    for (let c = 0; c < 3; c++) {
      const scale = 1 / (255 * odd.std[c]!);
      const shift = odd.mean[c]! / odd.std[c]!;
      for (let i = 0; i < s * s; i++) {
        expect(Object.is(t[c * s * s + i], Math.fround(all[i * 3 + c]! * scale - shift))).toBe(true);
      }
    }
  });

  it('reads the square at the crop window of a wider image', () => {
    // 6×5 image, pixel (x, y) = (10x + y, 0, 0); the 4×4 square at (1, 1)
    const rgb = Buffer.alloc(6 * 5 * 3);
    for (let y = 0; y < 5; y++) for (let x = 0; x < 6; x++) rgb[(y * 6 + x) * 3] = 10 * x + y;
    const t = normalise(rgb, spec, undefined, { width: 6, left: 1, top: 1 });
    const red = (x: number, y: number) => Math.round((t[y * 4 + x]! * 0.5 + 0.5) * 255);
    expect([red(0, 0), red(3, 0), red(0, 3), red(3, 3)]).toEqual([11, 41, 14, 44]);
  });
});

describe('evalView', () => {
  it('resizes the shorter side, then takes the centre crop', async () => {
    // 300×200: left 100 columns red, the rest blue. Resized to 384×256, the 224 crop starts at
    // x = 80, so its first 48 columns are red and the rest blue.
    const raw = Buffer.alloc(300 * 200 * 3);
    for (let y = 0; y < 200; y++)
      for (let x = 0; x < 300; x++) raw.set(x < 100 ? [255, 0, 0] : [0, 0, 255], (y * 300 + x) * 3);
    const png = await sharp(raw, { raw: { width: 300, height: 200, channels: 3 } })
      .png()
      .toBuffer();
    const t = await evalView(png, IMAGENET_PREPROCESS, 'halves.png');
    expect(t.length).toBe(3 * 224 * 224);
    const red = (x: number, y: number) => t[y * 224 + x]! * 0.229 + 0.485;
    expect(red(10, 100)).toBeCloseTo(1, 1);
    expect(red(60, 100)).toBeCloseTo(0, 1);
  });

  it('gives the tensor of sharp resizing and cropping, whether or not the image already has the shorter side', async () => {
    // 341×256 is Preprocess's output (cropped from the pixels decoded once), 300×200 needs the resize.
    for (const [width, height] of [
      [341, 256],
      [256, 300],
      [300, 200],
    ] as const) {
      const jpeg = await sharp({
        create: {
          width,
          height,
          channels: 3,
          background: '#000',
          noise: { type: 'gaussian', mean: 120, sigma: 50 },
        },
      })
        .jpeg()
        .toBuffer();
      const s = IMAGENET_PREPROCESS.resizeShorter / Math.min(width, height);
      const [w, h] = [Math.round(width * s), Math.round(height * s)];
      const crop = await sharp(jpeg)
        .resize(w, h, { fit: 'fill' })
        .extract({ left: Math.floor((w - 224) / 2), top: Math.floor((h - 224) / 2), width: 224, height: 224 })
        .raw()
        .toBuffer();
      const t = await evalView(
        jpeg,
        IMAGENET_PREPROCESS,
        'noise.jpg',
        new Float32Array(3 * 224 * 224).fill(9),
      );
      expect(
        Buffer.from(t.buffer).equals(Buffer.from(normalise(crop, IMAGENET_PREPROCESS).buffer)),
        `${width}×${height}`,
      ).toBe(true);
    }
  });

  it('names the image it cannot read', async () => {
    await expect(evalView(Buffer.from('not an image'), IMAGENET_PREPROCESS, 'x/bad.jpg')).rejects.toThrow(
      DataError,
    );
    await expect(evalView(Buffer.from('not an image'), IMAGENET_PREPROCESS, 'x/bad.jpg')).rejects.toThrow(
      /x\/bad\.jpg/,
    );
  });
});

describe('trainView', () => {
  it('gives the same view for the same seed, different views for different seeds, all finite', async () => {
    const img = await sharp({
      create: {
        width: 341,
        height: 256,
        channels: 3,
        background: '#000',
        noise: { type: 'gaussian', mean: 120, sigma: 50 },
      },
    })
      .jpeg()
      .toBuffer();
    const a = await trainView(img, IMAGENET_PREPROCESS, { rand: mulberry32(3) }, 'a');
    const b = await trainView(img, IMAGENET_PREPROCESS, { rand: mulberry32(3) }, 'a');
    const c = await trainView(img, IMAGENET_PREPROCESS, { rand: mulberry32(4) }, 'a');
    expect(a.length).toBe(3 * 224 * 224);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
    expect(a.every(Number.isFinite)).toBe(true);
  });

  it('mirrors about half of the views', async () => {
    // left half black, right half white: a mirrored view is bright on its left edge
    const raw = Buffer.alloc(256 * 256 * 3);
    for (let y = 0; y < 256; y++)
      for (let x = 128; x < 256; x++) raw.fill(255, (y * 256 + x) * 3, (y * 256 + x) * 3 + 3);
    const png = await sharp(raw, { raw: { width: 256, height: 256, channels: 3 } })
      .png()
      .toBuffer();
    const noRotation = {
      maxRotationDegrees: 0,
      scale: [1, 1] as [number, number],
      ratio: [1, 1] as [number, number],
    };
    let mirrored = 0;
    for (let seed = 0; seed < 40; seed++) {
      const t = await trainView(
        png,
        IMAGENET_PREPROCESS,
        { rand: mulberry32(seed), ...noRotation },
        'halves',
      );
      if (t[112 * 224 + 2]! > 0) mirrored++;
    }
    expect(mirrored).toBeGreaterThan(10);
    expect(mirrored).toBeLessThan(30);
  });
});
