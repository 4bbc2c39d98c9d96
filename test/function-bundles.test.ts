import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFunctions, bundleTrainJob, functionEntries } from '../scripts/bundle-functions.ts';
import { useLocalS3 } from '../src/local/pipeline.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

const run = promisify(execFile);
const BUILD_DIR = fileURLToPath(new URL('../.build', import.meta.url));

// The artefacts Lambda runs: one esbuild bundle per handler, importable on its own, working
// against S3 through the real SDK.

describe('esbuild bundles of functions/', () => {
  let outdir: string;
  let t: TestS3;
  let restoreEnv: () => void;

  beforeAll(async () => {
    // Inside the repo, so the externals (native packages) resolve from node_modules as in a layer.
    await mkdir(BUILD_DIR, { recursive: true });
    outdir = await mkdtemp(join(BUILD_DIR, 'test-bundles-'));
    await bundleFunctions(outdir);
    t = await startTestS3();
    restoreEnv = useLocalS3(t.s3.endpoint, t.s3.bucket);
  }, 120_000);
  afterAll(async () => {
    restoreEnv();
    await t.close();
    await rm(outdir, { recursive: true, force: true });
  });

  it('builds one bundle per entry point, each well under Lambda’s 50 MB zipped limit', async () => {
    for (const entry of functionEntries()) {
      const file = join(outdir, basename(entry).replace(/\.ts$/, '.mjs'));
      const { size } = await stat(file);
      expect(size).toBeGreaterThan(10_000);
      expect(size).toBeLessThan(10 * 1024 * 1024);
      const mod = (await import(pathToFileURL(file).href)) as { handler?: unknown };
      expect(typeof mod.handler, file).toBe('function');
    }
  });

  it('the bundled ReportFailure handler writes failure.json to S3', async () => {
    const { handler } = (await import(pathToFileURL(join(outdir, 'report-failure.mjs')).href)) as {
      handler: (event: unknown, context: unknown) => Promise<{ failureKey: string; cause: string }>;
    };
    const out = await handler(
      {
        runId: 'bundled-1',
        state: 'VerifyDataset',
        error: {
          Error: 'DataError',
          Cause: JSON.stringify({ errorType: 'DataError', errorMessage: 'tar truncated' }),
        },
      },
      { getRemainingTimeInMillis: () => 60_000 },
    );
    expect(out.failureKey).toBe('reports/bundled-1/failure.json');
    expect(out.cause).toBe('tar truncated');
    const report = await t.store.getJson<{ state: string; error: string }>(out.failureKey);
    expect(report).toMatchObject({ state: 'VerifyDataset', error: 'DataError' });
  });

  it('the training job bundles into one file that checks its environment contract', async () => {
    await bundleTrainJob(outdir);
    const env = { ...process.env, DOGBREED_RUN_ID: '../bad', DOGBREED_BUCKET: 'b' };
    const r = await run(process.execPath, [join(outdir, 'train.mjs')], { env }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((r as { code: number }).code, (r as { stderr: string }).stderr).toBe(2);
    expect((r as { stderr: string }).stderr).toContain('DOGBREED_RUN_ID has an unexpected format: "../bad"');
  });

  it('a bundled handler rejects a malformed event with the field named', async () => {
    const { handler } = (await import(pathToFileURL(join(outdir, 'fetch-dataset.mjs')).href)) as {
      handler: (event: unknown, context: unknown) => Promise<unknown>;
    };
    await expect(
      handler({ runId: 'x', config: { source: 42 } }, { getRemainingTimeInMillis: () => 60_000 }),
    ).rejects.toThrow('event.config.source must be a non-empty string, got 42');
  });
});
