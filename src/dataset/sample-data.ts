import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import sharp from 'sharp';
import { integer, object, seed } from '../schema/fields.ts';
import { parseInput } from '../schema/parse.ts';
import { hashString, mulberry32 } from '../util/prng.ts';
import { STANFORD_DOGS_CLASSES } from './stanford-dogs-classes.ts';
import { type TarFile, tarStream } from './tar-writer.ts';

// The synthetic dataset behind `dogbreed sample-data` and the default `dogbreed run`: a tarball
// laid out like the real Stanford Dogs images.tar, whose classes a small classifier can learn.
// Each class has its own background hue and a striped foreground blob with its own stripe colour,
// angle, period and tone; every image jitters position, scale, colour, lighting and noise.

export interface SampleDataOptions {
  classes: number;
  perClass: number;
  seed: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SampleDataResult {
  path: string;
  images: number;
  classes: string[];
  bytes: number;
}

const MIN_SIDE = 160;
const MAX_SIDE = 480;
const JPEG_QUALITY = 85;
/** Images rendered ahead while sharp encodes earlier ones on its thread pool. */
const LOOKAHEAD = 4;
const GOLDEN = 0.618_033_988_749_895;
/** Noise values drawn per image and cycled: a prime length so the cycle never lines up with rows. */
const NOISE_TABLE = 4099;

interface ClassStyle {
  hue: number;
  angle: number;
  /** Stripe period in pixels for a 320 px image. */
  period: number;
  darkStripes: boolean;
  /** Stripe hue relative to the background's. */
  stripeHue: number;
  /** Largest hue jitter that keeps neighbouring classes apart. */
  hueJitter: number;
}

/** Spread classes evenly over the hue circle, and over stripe angle/period/tone as well. */
function classStyle(index: number, count: number): ClassStyle {
  return {
    hue: index / count,
    angle: ((index * GOLDEN) % 1) * Math.PI,
    period: 10 + (index % 4) * 7,
    darkStripes: index % 2 === 0,
    stripeHue: 0.5 + ((index % 3) - 1) * 0.17,
    hueJitter: 0.25 / count,
  };
}

/** The sample's size and seed, as `dogbreed sample-data` takes them. */
export const SAMPLE_FIELDS = {
  classes: integer(2, STANFORD_DOGS_CLASSES.length),
  /** At least one image per split. */
  perClass: integer(3, 10_000),
  seed: seed(),
};
const SampleOptionsSchema = object(SAMPLE_FIELDS);

/** Writes the tarball to `outPath` (via `outPath.partial`, renamed only once complete). */
export async function writeSampleTarball(
  outPath: string,
  opts: SampleDataOptions,
): Promise<SampleDataResult> {
  parseInput(SampleOptionsSchema, opts, { name: 'sample options', bare: true });
  const classes = STANFORD_DOGS_CLASSES.slice(0, opts.classes);
  const total = classes.length * opts.perClass;
  const partial = `${outPath}.partial`;
  await mkdir(dirname(outPath), { recursive: true });
  try {
    await pipeline(tarStream(sampleFiles(classes, opts)), createWriteStream(partial));
    const { size } = await stat(partial);
    await rename(partial, outPath);
    return { path: outPath, images: total, classes, bytes: size };
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

async function* sampleFiles(classes: string[], opts: SampleDataOptions): AsyncGenerator<TarFile> {
  const total = classes.length * opts.perClass;
  const pending: Promise<TarFile>[] = [];
  let done = 0;
  const next = async (): Promise<TarFile> => {
    const file = await pending.shift()!;
    opts.onProgress?.(++done, total);
    return file;
  };
  for (const [index, folder] of classes.entries()) {
    const style = classStyle(index, classes.length);
    const wnid = folder.slice(0, folder.indexOf('-'));
    for (let n = 1; n <= opts.perClass; n++) {
      const rand = mulberry32(hashString(`${opts.seed}:${folder}:${n}`));
      const name = `Images/${folder}/${wnid}_${n}.jpg`;
      const encoded = encodeJpeg(renderImage(style, rand)).then((data) => ({ name, data }));
      // Awaited in order below; this only keeps a failure from surfacing as unhandled meanwhile.
      encoded.catch(() => {});
      pending.push(encoded);
      if (pending.length >= LOOKAHEAD) yield await next();
    }
  }
  while (pending.length > 0) yield await next();
}

interface RawImage {
  pixels: Uint8ClampedArray;
  width: number;
  height: number;
}

function encodeJpeg(img: RawImage): Promise<Buffer> {
  return sharp(img.pixels, { raw: { width: img.width, height: img.height, channels: 3 } })
    .jpeg({ quality: JPEG_QUALITY })
    .toBuffer();
}

function renderImage(style: ClassStyle, rand: () => number): RawImage {
  const between = (lo: number, hi: number) => lo + rand() * (hi - lo);
  const width = MIN_SIDE + Math.floor(rand() * (MAX_SIDE - MIN_SIDE + 1));
  const height = MIN_SIDE + Math.floor(rand() * (MAX_SIDE - MIN_SIDE + 1));
  const bright = between(0.85, 1.15);
  const hue = style.hue + between(-style.hueJitter, style.hueJitter);
  const bg = hsvToRgb(hue, between(0.45, 0.6), 0.75 * bright);
  const stripe = hsvToRgb(hue + style.stripeHue, 0.7, (style.darkStripes ? 0.3 : 0.95) * bright);
  const gap = mix(bg, stripe, 0.35);
  // The blob: an ellipse somewhere near the middle, of varying size.
  const cx = width * between(0.35, 0.65);
  const cy = height * between(0.35, 0.65);
  const irx = 1 / (width * between(0.22, 0.38));
  const iry = 1 / (height * between(0.22, 0.38));
  const angle = style.angle + between(-0.14, 0.14);
  const freq = 1 / (style.period * (Math.min(width, height) / 320) * between(0.9, 1.1));
  const ca = Math.cos(angle) * freq;
  const sa = Math.sin(angle) * freq;
  const light = between(-0.25, 0.25); // top-to-bottom lighting gradient
  const amplitude = between(8, 20);
  const noise = new Float64Array(NOISE_TABLE);
  for (let i = 0; i < NOISE_TABLE; i++) noise[i] = (rand() - 0.5) * amplitude;

  const pixels = new Uint8ClampedArray(width * height * 3);
  let o = 0;
  let k = 0;
  for (let y = 0; y < height; y++) {
    const gain = 1 + light * (y / height - 0.5);
    const dy = (y - cy) * iry;
    for (let x = 0; x < width; x++) {
      const dx = (x - cx) * irx;
      let c = bg;
      if (dx * dx + dy * dy < 1) {
        const phase = x * ca + y * sa;
        c = phase - Math.floor(phase) < 0.5 ? stripe : gap;
      }
      const n = noise[k]!;
      k = k + 1 === NOISE_TABLE ? 0 : k + 1;
      pixels[o++] = c[0] * gain + n;
      pixels[o++] = c[1] * gain + n;
      pixels[o++] = c[2] * gain + n;
    }
  }
  return { pixels, width, height };
}

type Rgb = readonly [number, number, number];

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** h in turns (wraps), s and v in 0..1 (v may exceed 1 slightly: clamped on write); 0..255 out. */
function hsvToRgb(h: number, s: number, v: number): Rgb {
  const hh = (((h % 1) + 1) % 1) * 6;
  const i = Math.floor(hh);
  const f = hh - i;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i]!;
  return [r! * 255, g! * 255, b! * 255];
}
