import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { configureSharp, preprocessImage } from '../src/imaging/preprocess-image.ts';
import { makeJpegs, samplePhotoPaths } from './images.ts';
import { BENCH_DIR, REPO_ROOT, SHARED_SAMPLE_DIR, SYSTEM_PYTHON } from './paths.ts';
import { progress, round, runChecked, runChild } from './util.ts';

// Preprocess per-image work (decode, EXIF rotate, shorter side to 256, JPEG q90) on one core:
// preprocessImage with sharp/libvips limited to one thread, images one after the other, against
// Pillow doing the same in one Python process. Both time in-memory bytes (file reads excluded).
//
// preprocessImage resizes with kernel 'linear', not sharp's default lanczos3, so the ratio is taken
// against Pillow's BILINEAR (the same filter); LANCZOS is reported beside it.

const GOAL_RATIO = 1.5;
const SHORTER = 256;
const PILLOW_FILTERS = ['bilinear', 'lanczos'] as const;
type PillowFilter = (typeof PILLOW_FILTERS)[number];
const PILLOW_MISSING = 'python3-pil is not installed: apt-get install python3-pil';

interface Pass {
  images: number;
  bestSeconds: number;
  allSeconds: number[];
  /** CPU time of the whole process during the fastest pass. */
  cpuSeconds: number;
}

function rates(p: Pass) {
  return {
    imagesPerSecPerCore: round(p.images / p.bestSeconds, 1),
    imagesPerCpuSec: round(p.images / p.cpuSeconds, 1),
    cpuCoresUsed: round(p.cpuSeconds / p.bestSeconds, 2),
    bestSeconds: round(p.bestSeconds),
    allSeconds: p.allSeconds.map((s) => round(s)),
  };
}

export async function pillowVersion(): Promise<string | undefined> {
  const res = await runChild(SYSTEM_PYTHON, ['-c', 'import PIL; print(PIL.__version__)']).catch(
    () => undefined,
  );
  return res?.code === 0 ? res.stdout.trim() : undefined;
}

/** Runs fn with sharp as the benchmark wants it: one libvips thread, no operation cache. */
async function singleThreaded<T>(fn: () => Promise<T>): Promise<T> {
  const before = sharp.concurrency();
  configureSharp({ concurrency: 1, cache: false });
  try {
    return await fn();
  } finally {
    configureSharp({ concurrency: before, cache: true });
  }
}

/** What sharp costs per call whatever the image: the header read and a pipeline on an 8x8 JPEG. */
async function sharpFixedCosts() {
  const tiny = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
    .jpeg()
    .toBuffer();
  const perCallMs = async (fn: () => Promise<unknown>, n = 300): Promise<number> => {
    for (let i = 0; i < 20; i++) await fn();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await fn();
    return round((performance.now() - t0) / n);
  };
  return singleThreaded(async () => ({
    metadataCall: await perCallMs(() => sharp(tiny).metadata()),
    tinyJpegRoundTrip: await perCallMs(() => sharp(tiny).jpeg({ quality: 90 }).toBuffer()),
  }));
}

async function sharpPasses(images: Buffer[], passes: number, label: string): Promise<Pass> {
  const run = (data: Buffer, i: number) =>
    preprocessImage(data, { resizeShorter: SHORTER, name: `${label} #${i}` });
  for (const [i, data] of images.slice(0, 10).entries()) await run(data, i);
  const all: { seconds: number; cpuSeconds: number }[] = [];
  for (let p = 0; p < passes; p++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (const [i, data] of images.entries()) await run(data, i);
    const cpu = process.cpuUsage(c0);
    all.push({ seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
    progress(`preprocess ${label}: sharp pass ${p + 1}/${passes} ${all.at(-1)!.seconds.toFixed(2)} s`);
  }
  const best = all.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  return {
    images: images.length,
    bestSeconds: best.seconds,
    cpuSeconds: best.cpuSeconds,
    allSeconds: all.map((r) => r.seconds),
  };
}

async function pillowPasses(
  paths: string[],
  dir: string,
  passes: number,
  label: string,
): Promise<Record<PillowFilter, Pass>> {
  const listFile = join(dir, `${label}.txt`);
  await writeFile(listFile, `${paths.join('\n')}\n`);
  progress(`preprocess ${label}: Pillow (${PILLOW_FILTERS.join(', ')}), ${passes} pass(es) each`);
  const script = join(BENCH_DIR, 'pillow-preprocess.py');
  const out = await runChecked(SYSTEM_PYTHON, [script, listFile, String(passes), PILLOW_FILTERS.join(',')]);
  return JSON.parse(out) as Record<PillowFilter, Pass>;
}

/** One image set through both sides; the ratio is sharp's images/s over Pillow's. */
async function compare(label: string, paths: string[], dir: string, passes: number, pillow: boolean) {
  const images = await Promise.all(paths.map((p) => readFile(p)));
  const sharpRates = rates(await singleThreaded(() => sharpPasses(images, passes, label)));
  if (!pillow) return { images: images.length, sharp: sharpRates, pillow: { skipped: PILLOW_MISSING } };
  const py = await pillowPasses(paths, dir, passes, label);
  const bilinear = rates(py.bilinear);
  const lanczos = rates(py.lanczos);
  const ratio = sharpRates.imagesPerSecPerCore / bilinear.imagesPerSecPerCore;
  return {
    images: images.length,
    ratio: round(ratio, 2),
    meetsGoal: ratio >= GOAL_RATIO,
    ratioVsPillowLanczos: round(sharpRates.imagesPerSecPerCore / lanczos.imagesPerSecPerCore, 2),
    ratioByCpuTime: round(sharpRates.imagesPerCpuSec / bilinear.imagesPerCpuSec, 2),
    sharp: sharpRates,
    pillow: { bilinear, lanczos },
  };
}

export async function benchPreprocess(dir: string, quick: boolean) {
  const pillow = (await pillowVersion()) !== undefined;
  const passes = quick ? 1 : 2;

  const photos = await samplePhotoPaths(quick ? 120 : 960);
  const syntheticCount = quick ? 40 : 200;
  progress(`preprocess: encoding ${syntheticCount} synthetic 500x375 JPEGs`);
  const synthetic = await makeJpegs(syntheticCount, () => ({ width: 500, height: 375 }));
  const syntheticPaths = await Promise.all(
    synthetic.map(async (data, i) => {
      const path = join(dir, `synthetic-${i}.jpg`);
      await writeFile(path, data);
      return path;
    }),
  );

  const realPhotos224 =
    photos.length > 0
      ? {
          source: `${relative(REPO_ROOT, SHARED_SAMPLE_DIR)} (real photos, 224x224, upscaled to 256)`,
          ...(await compare('real-224', photos, dir, passes, pillow)),
        }
      : { skipped: `no real photos at ${SHARED_SAMPLE_DIR}` };
  const synthetic500x375 = {
    source:
      photos.length > 0
        ? 'sample photos scaled to 500x375, JPEG q90 (Stanford Dogs-like size; resized to 341x256)'
        : 'smoothed noise 500x375, JPEG q90 (resized to 341x256)',
    avgJpegKB: round(synthetic.reduce((s, b) => s + b.length, 0) / synthetic.length / 1024, 1),
    ...(await compare('synthetic-500x375', syntheticPaths, dir, passes, pillow)),
  };

  const sets = [realPhotos224, synthetic500x375];
  const verdicts = sets.flatMap((s) => ('meetsGoal' in s ? [s.meetsGoal] : []));
  return {
    goal: `sharp images/s per core >= ${GOAL_RATIO} x Pillow's for the same work (decode, EXIF rotate, shorter side to ${SHORTER}, JPEG q90)`,
    meetsGoal: verdicts.length > 0 ? verdicts.every(Boolean) : null,
    method:
      "one core each: sharp concurrency 1, cache off, images awaited one by one; Pillow in one /usr/bin/python3 process. In-memory bytes, best of the timed passes after a 10-image warm-up. 'ratio' is against Pillow BILINEAR because preprocessImage resizes with kernel 'linear'; Pillow's exif_transpose/convert run only when they change something (else they only copy).",
    realPhotos224,
    synthetic500x375,
    sharpFixedCostPerCallMs: await sharpFixedCosts(),
  };
}
