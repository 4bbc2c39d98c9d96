import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { SHARED_SAMPLE_DIR } from './paths.ts';

// Benchmark images: photographic JPEGs at Stanford Dogs sizes. The real 224×224 sample photos are
// scaled up when they are there (≈30 KB at q90, like the real dataset's ≈37 KB average); otherwise
// smoothed noise of a similar size stands in.

export interface JpegSpec {
  width: number;
  height: number;
}

/** Up to `limit` real sample photos, spread over the classes (i-th photo of every class first). */
export async function samplePhotoPaths(limit: number): Promise<string[]> {
  if (!existsSync(SHARED_SAMPLE_DIR)) return [];
  const classes = (await readdir(SHARED_SAMPLE_DIR)).sort();
  const perClass = await Promise.all(
    classes.map(async (c) =>
      (await readdir(join(SHARED_SAMPLE_DIR, c)))
        .filter((f) => f.toLowerCase().endsWith('.jpg'))
        .sort()
        .map((f) => join(SHARED_SAMPLE_DIR, c, f)),
    ),
  );
  const out: string[] = [];
  for (let i = 0; out.length < limit; i++) {
    const row = perClass.map((files) => files[i]).filter((f): f is string => f !== undefined);
    if (row.length === 0) break;
    out.push(...row.slice(0, limit - out.length));
  }
  return out;
}

async function jpegFrom(photo: string | undefined, spec: JpegSpec, seed: number): Promise<Buffer> {
  const { width, height } = spec;
  const base = photo
    ? sharp(photo).resize(width, height, { fit: 'fill' })
    : sharp({
        create: {
          width,
          height,
          channels: 3,
          background: { r: (seed * 37) % 256, g: (seed * 91) % 256, b: (seed * 53) % 256 },
          noise: { type: 'gaussian', mean: 128, sigma: 40 },
        },
      }).blur(1.5 + (seed % 3) * 0.5);
  return base.jpeg({ quality: 90 }).toBuffer();
}

/** `count` distinct JPEGs, spec(i) giving each one's size; a few encoded at a time. */
export async function makeJpegs(count: number, spec: (i: number) => JpegSpec): Promise<Buffer[]> {
  const photos = await samplePhotoPaths(count);
  const out: Buffer[] = [];
  const batch = 8;
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    const jobs = Array.from({ length: n }, (_, k) => jpegFrom(photos[i + k], spec(i + k), i + k));
    out.push(...(await Promise.all(jobs)));
  }
  return out;
}
