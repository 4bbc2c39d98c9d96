import { rm } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { setLogSink } from '../src/log.ts';
import { benchBatchedInference } from './batched-inference.ts';
import { benchClassify } from './classify.ts';
import { benchFeatureExtraction } from './feature-extraction.ts';
import { benchFetch } from './fetch.ts';
import { benchHeadTraining } from './head-training.ts';
import { benchPreprocess, pillowVersion } from './preprocess.ts';
import { benchStepCache } from './step-cache.ts';
import { MiB, newTempDir, progress, round, runChild } from './util.ts';
import { benchVerify } from './verify.ts';

// `npm run bench [-- --only verify,preprocess,fetch] [-- --quick]`: the data-stage benchmarks.
// Prints one JSON document on stdout (progress on stderr); every figure is compared with a
// baseline measured in the same run on the same machine. Generated inputs live in temp folders
// that are removed at the end.

const BENCHMARKS = {
  verify: benchVerify,
  preprocess: benchPreprocess,
  fetch: benchFetch,
  inference: benchBatchedInference,
  features: benchFeatureExtraction,
  classify: benchClassify,
  headTraining: (_dir: string, quick: boolean) => benchHeadTraining({ quick }),
  stepCache: (dir: string) => benchStepCache(dir),
} as const;
type Name = keyof typeof BENCHMARKS;
const NAMES = Object.keys(BENCHMARKS) as Name[];

function parseArgs(argv: string[]): { only: Name[]; quick: boolean } {
  let only = NAMES;
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      const picked = (value ?? '').split(',').filter(Boolean);
      const unknown = picked.filter((n) => !NAMES.includes(n as Name));
      if (picked.length === 0 || unknown.length > 0)
        throw new Error(
          `--only takes a comma-separated list of ${NAMES.join(', ')}; got ${value ?? 'nothing'}`,
        );
      only = NAMES.filter((n) => picked.includes(n));
    } else throw new Error(`unknown argument ${arg}: use --only ${NAMES.join(',')} and/or --quick`);
  }
  return { only, quick };
}

/** The 1-minute load average: other work on the machine makes every figure noisier. */
const load1m = () => round(loadavg()[0] ?? 0, 2);

async function machine(loadAtStart: number) {
  const sha = await runChild('sha256sum', ['--version']).catch(() => undefined);
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGB: round(totalmem() / 1024 / MiB, 1),
    os: `${process.platform} ${release()} ${process.arch}`,
    node: process.version,
    sharp: sharp.versions.sharp ?? 'unknown',
    libvips: sharp.versions.vips,
    pillow: (await pillowVersion()) ?? 'not installed',
    sha256sum: sha?.stdout.split('\n')[0] ?? 'unknown',
    loadAvg1mAtStart: loadAtStart,
    loadAvg1mAtEnd: load1m(),
  };
}

async function main(): Promise<void> {
  const { only, quick } = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const loadAtStart = load1m();
  // The stages log progress as JSON lines; keep stderr readable and keep only what matters.
  setLogSink((level, message) => {
    if (level === 'warn' || level === 'error') progress(`${level}: ${message}`);
  });
  const benchmarks: Partial<Record<Name, unknown>> = {};
  for (const name of only) {
    const dir = await newTempDir(name);
    progress(`${name}: starting${quick ? ' (quick)' : ''}, inputs in ${dir}`);
    const t0 = performance.now();
    try {
      const result = await BENCHMARKS[name](dir, quick);
      benchmarks[name] = { ...result, wallSeconds: round((performance.now() - t0) / 1000, 1) };
    } catch (err) {
      process.exitCode = 1;
      progress(`${name}: FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      benchmarks[name] = { error: err instanceof Error ? err.message : String(err) };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const report = {
    machine: await machine(loadAtStart),
    options: { quick, only },
    units: { MB: '2^20 bytes', KB: '2^10 bytes', seconds: 'wall clock unless named cpu' },
    benchmarks,
    totalWallSeconds: round((performance.now() - started) / 1000, 1),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
