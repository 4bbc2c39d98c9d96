import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { startLocalS3 } from '../src/local/s3-server.ts';
import { BENCH_DIR, TSNODE } from './paths.ts';
import { MiB, progress, round, runChecked } from './util.ts';

// FetchDataset's peak memory for a large source: s3rver runs here, FetchDataset in a child process
// (as a Lambda would), whose peak RSS is compared with a child that only starts up and imports.

const GOAL_PEAK_MB = 300;
const CHILD = join(BENCH_DIR, 'fetch-child.ts');

interface ChildReport {
  mode: string;
  maxRssKB: number;
  seconds?: number;
  cpuSeconds?: number;
  bytes?: number;
  sha256?: string;
  skipped?: boolean;
}

/** Writes `mb` MiB of random bytes, 1 MiB at a time; returns their SHA-256. */
async function writeRandomFile(path: string, mb: number): Promise<string> {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let i = 0; i < mb; i++) {
      const chunk = randomBytes(MiB);
      hash.update(chunk);
      yield chunk;
    }
  }
  await pipeline(Readable.from(chunks()), createWriteStream(path));
  return hash.digest('hex');
}

/**
 * One child run against a fresh local S3 (a reused one would skip the already fetched source).
 * parentCpuSeconds is this process's CPU time meanwhile: s3rver's work.
 */
async function childRun(
  dir: string,
  run: number,
  args: string[],
): Promise<ChildReport & { parentCpuSeconds: number }> {
  const bucket = 'bench-fetch';
  const s3Dir = join(dir, `s3-${run}`);
  const s3 = await startLocalS3({ directory: s3Dir, bucket });
  try {
    const env = { ...process.env, DOGBREED_BUCKET: bucket, DOGBREED_S3_ENDPOINT: s3.endpoint };
    const cpu0 = process.cpuUsage();
    const out = await runChecked(process.execPath, [TSNODE, CHILD, ...args], { env });
    const cpu = process.cpuUsage(cpu0);
    const report = JSON.parse(out.trim().split('\n').at(-1) ?? '') as ChildReport;
    return { ...report, parentCpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    await s3.close();
    await rm(s3Dir, { recursive: true, force: true });
  }
}

const mb = (kb: number) => round(kb / 1024, 1);

export async function benchFetch(dir: string, quick: boolean) {
  const sourceMB = quick ? 100 : 500;
  const runs = quick ? 1 : 2;
  const source = join(dir, 'source.tar');
  progress(`fetch: writing a ${sourceMB} MiB source file`);
  const sha256 = await writeRandomFile(source, sourceMB);

  const baseline: ChildReport[] = [];
  const fetches: (ChildReport & { parentCpuSeconds: number })[] = [];
  for (let i = 0; i < runs; i++) {
    baseline.push(await childRun(dir, fetches.length + baseline.length, ['noop']));
    progress(`fetch: no-op child ${i + 1}/${runs}: peak RSS ${mb(baseline.at(-1)!.maxRssKB)} MB`);
    const r = await childRun(dir, fetches.length + baseline.length, ['fetch', pathToFileURL(source).href]);
    if (r.sha256 !== sha256 || r.bytes !== sourceMB * MiB || r.skipped)
      throw new Error(`FetchDataset stored ${r.bytes} bytes with sha256 ${r.sha256} (skipped: ${r.skipped})`);
    fetches.push(r);
    progress(
      `fetch: FetchDataset child ${i + 1}/${runs}: peak RSS ${mb(r.maxRssKB)} MB, ${r.seconds?.toFixed(2)} s`,
    );
  }

  const peakKB = Math.max(...fetches.map((r) => r.maxRssKB));
  const baselineKB = Math.max(...baseline.map((r) => r.maxRssKB));
  const bestSeconds = Math.min(...fetches.map((r) => r.seconds ?? Number.POSITIVE_INFINITY));
  return {
    goal: `FetchDataset peak RSS < ${GOAL_PEAK_MB} MB for a ${sourceMB} MB source`,
    meetsGoal: mb(peakKB) < GOAL_PEAK_MB,
    sourceMB,
    source:
      'file:// URL to random bytes on local disk; s3rver in the parent, FetchDataset in a child process',
    runs,
    peakRssMB: mb(peakKB),
    peakRssMBPerRun: fetches.map((r) => mb(r.maxRssKB)),
    baselineNoopPeakRssMB: mb(baselineKB),
    attributableToFetchMB: mb(peakKB - baselineKB),
    ratioToBaseline: round(peakKB / baselineKB, 2),
    mbPerSec: round(sourceMB / bestSeconds, 1),
    secondsPerRun: fetches.map((r) => round(r.seconds ?? Number.NaN)),
    fetchChildCpuSecondsPerRun: fetches.map((r) => round(r.cpuSeconds ?? Number.NaN)),
    s3rverParentCpuSecondsPerRun: fetches.map((r) => round(r.parentCpuSeconds)),
  };
}
