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
