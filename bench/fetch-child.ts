import { performance } from 'node:perf_hooks';
import { fetchDataset } from '../src/stages/fetch-dataset.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';

// Child process of the fetch benchmark: `fetch-child.ts fetch <source>` runs FetchDataset against
// the bucket named by DOGBREED_BUCKET / DOGBREED_S3_ENDPOINT; `fetch-child.ts noop` only starts up
// (same imports, same store) as the baseline. Prints one JSON line with the peak RSS.

const [mode, source] = process.argv.slice(2);
const store = storeFromEnv();
let fetched:
  | { seconds: number; cpuSeconds: number; bytes: number; sha256: string; skipped: boolean }
  | undefined;
if (mode === 'fetch') {
  if (!source) throw new Error('usage: fetch-child.ts fetch <source>');
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  const result = await fetchDataset(store, { source });
  const cpu = process.cpuUsage(cpu0);
  fetched = {
    seconds: (performance.now() - start) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    bytes: result.bytes,
    sha256: result.sha256,
    skipped: result.skipped,
  };
} else if (mode !== 'noop') {
  throw new Error(`unknown mode ${mode}: use fetch or noop`);
}
// Linux reports maxRSS in KiB.
process.stdout.write(`${JSON.stringify({ mode, maxRssKB: process.resourceUsage().maxRSS, ...fetched })}\n`);
