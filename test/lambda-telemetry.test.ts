import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context, S3Event } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ClassifySummary, handler as classifyHandler } from '../functions/classify-upload.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { readTar } from '../src/dataset/tar-reader.ts';
import { loadLocalDefinition } from '../src/local/definition.ts';
import { localHandlers } from '../src/local/handlers.ts';
import { useLocalS3 } from '../src/local/pipeline.ts';
import { type ExecutionResult, type LocalHandler, runStateMachine } from '../src/local/step-functions.ts';
import type { MetricsReport } from '../src/metrics/types.ts';
import type { UploadPrediction } from '../src/stages/classify-upload.ts';
import type { WriteReportResult } from '../src/stages/write-report.ts';
import type { ShardResult, ValidationResult, VerifyResult } from '../src/types.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// The functions' logs and metrics as Lambda sees them: the real handlers, driven by the deployed
// ASL file against a real local S3, with the environment Lambda sets, one invocation at a time
// per function as a Lambda execution environment serves them. Their stdout and stderr are read
// back as CloudWatch would read them: Powertools JSON log lines and EMF metric documents.

// The environment Lambda (and serverless.yml) gives the functions, set before the imports above
// are evaluated: the functions decide when they load whether they run on Lambda.
const { LAMBDA_ENV, savedEnv } = vi.hoisted(() => {
  const env = {
    AWS_LAMBDA_FUNCTION_NAME: 'dogbreed-pipeline-test-Telemetry',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    POWERTOOLS_SERVICE_NAME: 'dogbreed-pipeline-test',
    POWERTOOLS_METRICS_NAMESPACE: 'DogbreedPipelineTest',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  return { LAMBDA_ENV: env, savedEnv: saved };
});

interface LogLine {
  level: string;
  message: string;
  service: string;
  cold_start: boolean;
  function_name: string;
  function_request_id: string;
  runId?: string;
  [key: string]: unknown;
}
interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [key: string]: unknown;
}
interface Invocation {
  state: string;
  context: Context;
  event: unknown;
  result?: unknown;
  error?: unknown;
  /** What the invocation wrote to stdout and stderr, line by line. */
  lines: string[];
}

const invocations: Invocation[] = [];
let current: Invocation | undefined;
/** Written while no Lambda invocation ran (the local Batch job's lines). */
const between: string[] = [];

/** Routes stdout and stderr into the running invocation's lines, as Lambda's log stream has them. */
function captureOutput(): () => void {
  const spies = [process.stdout, process.stderr].map((stream) =>
    vi.spyOn(stream, 'write').mockImplementation(((chunk: string | Uint8Array) => {
      const lines = String(chunk).split('\n').filter(Boolean);
      (current?.lines ?? between).push(...lines);
      return true;
    }) as typeof stream.write),
  );
  return () => {
    for (const spy of spies) spy.mockRestore();
  };
}

let queue: Promise<unknown> = Promise.resolve();
/** One invocation at a time, each recorded with its context and output. */
function asLambda(state: string, handler: LocalHandler): LocalHandler {
  return (event, context) => {
    const run = queue.then(async () => {
      const invocation: Invocation = { state, context, event, lines: [] };
      invocations.push(invocation);
      current = invocation;
      try {
        invocation.result = await handler(event, context);
        return invocation.result;
      } catch (err) {
        invocation.error = err;
        throw err;
      } finally {
        current = undefined;
      }
    });
    queue = run.catch(() => undefined);
    return run;
  };
}

/** Runs one invocation outside the state machine, recording it like asLambda does. */
async function invokeCaptured(state: string, context: Context, call: () => Promise<unknown>) {
  const invocation: Invocation = { state, context, event: undefined, lines: [] };
  current = invocation;
  const restore = captureOutput();
  try {
    invocation.result = await call();
  } catch (err) {
    invocation.error = err;
  } finally {
    restore();
    current = undefined;
  }
  return invocation;
}

const parsed = (lines: string[]) =>
  lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
const logLines = (inv: Invocation) => parsed(inv.lines).filter((o) => !('_aws' in o)) as LogLine[];
const emfDocs = (inv: Invocation) => parsed(inv.lines).filter((o) => '_aws' in o) as EmfDocument[];
const of = (state: string) => invocations.filter((i) => i.state === state);

/** The application metrics of one invocation: name → { unit, values }, checked to be one EMF document. */
function appMetrics(inv: Invocation) {
  const docs = emfDocs(inv).filter((d) => !('ColdStart' in d));
  expect(docs, `${inv.state}: one EMF document of application metrics`).toHaveLength(1);
  const doc = docs[0]!;
  const [directive] = doc._aws.CloudWatchMetrics;
  expect(doc._aws.CloudWatchMetrics).toHaveLength(1);
  expect(directive!.Namespace).toBe(LAMBDA_ENV.POWERTOOLS_METRICS_NAMESPACE);
  expect(directive!.Dimensions).toEqual([['service', 'state']]);
  expect(doc.service).toBe(LAMBDA_ENV.POWERTOOLS_SERVICE_NAME);
  expect(doc.state).toBe(inv.state);
  const out: Record<string, { unit: string; value: unknown }> = {};
  for (const m of directive!.Metrics) out[m.Name] = { unit: m.Unit, value: doc[m.Name] };
  return out;
}

const RUN_ID = 'telemetry-run';
let t: TestS3;
let workspace: string;
let restoreS3Env: () => void;
let execution: ExecutionResult;

beforeAll(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'dogbreed-telemetry-'));
  const tar = join(workspace, 'sample.tar');
  await writeSampleTarball(tar, { classes: 4, perClass: 12, seed: 7 });
  t = await startTestS3();
  restoreS3Env = useLocalS3(t.s3.endpoint, t.s3.bucket);
  // On Lambda, FetchDataset reads no local file: the tarball comes from S3.
  await t.store.put('incoming/sample.tar', await readFile(tar));
  // Every Task but TrainModel (AWS Batch, not Lambda) runs as a Lambda function.
  const handlers = Object.fromEntries(
    Object.entries(localHandlers).map(([state, h]) => [
      state,
      state === 'TrainModel' ? h : asLambda(state, h),
    ]),
  );
  const restoreOutput = captureOutput();
  try {
    execution = await runStateMachine({
      definition: await loadLocalDefinition(),
      executionName: RUN_ID,
      input: {
        config: {
          source: `s3://${t.s3.bucket}/incoming/sample.tar`,
          seed: 3,
          shardSize: 10,
          resizeShorter: 64,
        },
      },
      handlers,
    });
  } finally {
    restoreOutput();
  }
});

afterAll(async () => {
  restoreS3Env();
  await t.close();
  await rm(workspace, { recursive: true, force: true });
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('Powertools logs and EMF metrics of the functions on Lambda', () => {
  it('runs the pipeline through every Lambda state', () => {
    expect(execution.status, `${execution.error}: ${execution.cause}`).toBe('SUCCEEDED');
    expect([...new Set(invocations.map((i) => i.state))]).toEqual([
      'FetchDataset',
      'VerifyDataset',
      'BuildManifests',
      'PreprocessShard',
      'ValidateShard',
      'WriteReport',
    ]);
    expect(invocations.every((i) => i.error === undefined)).toBe(true);
  });

  it('every log line is JSON with the request id, cold start, function and run id; the core’s lines too', () => {
    for (const inv of invocations) {
      expect(
        inv.lines.every((l) => l.startsWith('{')),
        `${inv.state}: only JSON lines`,
      ).toBe(true);
      const logs = logLines(inv);
      expect(logs.length, `${inv.state} logged`).toBeGreaterThan(0);
      for (const line of logs) {
        expect(line).toMatchObject({
          service: LAMBDA_ENV.POWERTOOLS_SERVICE_NAME,
          function_name: inv.context.functionName,
          function_request_id: inv.context.awsRequestId,
          runId: RUN_ID,
          cold_start: inv === invocations[0],
        });
        expect(['INFO', 'WARN']).toContain(line.level);
      }
    }
    // Lines the core (src/stages) wrote, with the keys of the invocation that ran it.
    const verified = (of('VerifyDataset')[0]!.result as VerifyResult).images;
    expect(logLines(of('VerifyDataset')[0]!).map((l) => l.message)).toContain(
      `${verified} images in 4 classes indexed`,
    );
    for (const inv of of('ValidateShard')) {
      const r = inv.result as ValidationResult;
      const line = logLines(inv).find((l) => l.message.endsWith(`${r.correct}/${r.images} correct`));
      expect(line, 'the core’s line, with its own fields').toMatchObject({ key: r.predictionsKey });
    }
  });

  it('VerifyDataset, PreprocessShard and ValidateShard count the images they processed and rejected', () => {
    const [verify] = of('VerifyDataset');
    const v = verify!.result as VerifyResult;
    expect(v.reused).toBe(false);
    expect(appMetrics(verify!)).toEqual({
      ImagesProcessed: { unit: 'Count', value: v.images + v.invalid },
      ImagesRejected: { unit: 'Count', value: v.invalid },
    });
    expect(v.images + v.invalid).toBe(48);

    const shards = of('PreprocessShard');
    expect(shards.length).toBeGreaterThan(1);
    let preprocessed = 0;
    for (const inv of shards) {
      const r = inv.result as ShardResult;
      expect(r.cached).toBe(false);
      expect(appMetrics(inv)).toEqual({ ImagesProcessed: { unit: 'Count', value: r.images } });
      preprocessed += r.images;
    }
    expect(preprocessed).toBe(v.images);

    const validated = of('ValidateShard');
    expect(validated.length).toBeGreaterThan(0);
    for (const inv of validated) {
      const r = inv.result as ValidationResult;
      expect(appMetrics(inv)).toEqual({ ImagesProcessed: { unit: 'Count', value: r.images } });
    }
  });

  it('WriteReport publishes the run’s accuracy and macro F1, as metrics.json has them', async () => {
    const [report] = of('WriteReport');
    const r = report!.result as WriteReportResult;
    const metrics = await t.store.getJson<MetricsReport>(r.metricsKey);
    expect(appMetrics(report!)).toEqual({
      RunAccuracy: { unit: 'None', value: metrics.accuracy },
      RunMacroF1: { unit: 'None', value: metrics.macro.f1 },
    });
  });

  it('a ColdStart metric once per execution environment, from the first invocation that publishes metrics', () => {
    const coldStarts = invocations.flatMap((inv) =>
      emfDocs(inv)
        .filter((d) => 'ColdStart' in d)
        .map((d) => ({ state: inv.state, d })),
    );
    expect(coldStarts).toHaveLength(1);
    const { state, d } = coldStarts[0]!;
    expect(state).toBe('VerifyDataset');
    expect(d.ColdStart).toBe(1);
    expect(d.function_name).toBe(of('VerifyDataset')[0]!.context.functionName);
    expect(d._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'function_name']]);
  });

  it('a failed invocation logs its error with the same keys, and publishes no figures', async () => {
    const [verify] = of('VerifyDataset');
    const event = verify!.event as { dataset: { sha256: string } };
    const ctx = { ...verify!.context, awsRequestId: randomUUID() };
    const inv = await invokeCaptured('VerifyDataset', ctx, () =>
      localHandlers.VerifyDataset!({ ...event, dataset: { ...event.dataset, sha256: '0'.repeat(64) } }, ctx),
    );
    expect(inv.error).toMatchObject({ name: 'DataError' });
    const failed = logLines(inv).find((l) => l.level === 'ERROR');
    expect(failed).toMatchObject({
      message: expect.stringMatching(/^VerifyDataset failed: datasets\/.*images\.tar has sha256 /),
      state: 'VerifyDataset',
      error: 'DataError',
      runId: RUN_ID,
      function_request_id: ctx.awsRequestId,
      cold_start: false,
    });
    expect(emfDocs(inv)).toEqual([]);
  });

  it('states that measure nothing emit no EMF document', () => {
    for (const inv of [...of('FetchDataset'), ...of('BuildManifests')]) expect(emfDocs(inv)).toEqual([]);
  });
});

describe('ClassifyUpload on Lambda', () => {
  const context = (): Context =>
    ({
      functionName: 'dogbreed-pipeline-test-ClassifyUpload',
      invokedFunctionArn:
        'arn:aws:lambda:us-east-1:000000000000:function:dogbreed-pipeline-test-ClassifyUpload',
      memoryLimitInMB: '1769',
      awsRequestId: randomUUID(),
      getRemainingTimeInMillis: () => 60_000,
    }) as Context;
  const record = (key: string, size: number) => ({
    eventName: 'ObjectCreated:Put',
    s3: { bucket: { name: t.s3.bucket }, object: { key, size } },
  });

  it('counts uploads classified and failed, and each classification’s latency', async () => {
    let jpeg: Buffer | undefined;
    for await (const e of readTar(createReadStream(join(workspace, 'sample.tar')))) {
      if (e.name.endsWith('.jpg') && e.data) {
        jpeg = Buffer.from(e.data);
        break;
      }
    }
    await t.store.put('uploads/dog.jpg', jpeg!);
    await t.store.put('uploads/broken.jpg', Buffer.from('not a JPEG'));
    const ctx = context();
    const event = { Records: [record('uploads/dog.jpg', jpeg!.length), record('uploads/broken.jpg', 10)] };
    const inv = await invokeCaptured('ClassifyUpload', ctx, () => classifyHandler(event as S3Event, ctx));
    expect(inv.result as ClassifySummary).toMatchObject({ processed: 2, succeeded: 1, failed: 1 });
    const prediction = await t.store.getJson<UploadPrediction>('predictions/dog.jpg.json');
    expect(prediction.top5).toHaveLength(4);
    expect(appMetrics(inv)).toEqual({
      UploadsClassified: { unit: 'Count', value: 1 },
      UploadErrors: { unit: 'Count', value: 1 },
      ClassificationLatency: { unit: 'Milliseconds', value: prediction.tookMs },
    });
    const logs = logLines(inv);
    expect(logs.map((l) => [l.level, l.key])).toEqual([
      ['INFO', 'uploads/dog.jpg'],
      ['WARN', 'uploads/broken.jpg'],
    ]);
    for (const line of logs) {
      expect(line).toMatchObject({ function_request_id: ctx.awsRequestId, cold_start: false });
      expect(line.runId).toBeUndefined();
    }
  });
});

describe('off Lambda (the local runtime)', () => {
  it('the same handlers leave stdout and stderr alone and log through the sink the runtime set', async () => {
    const env = { ...process.env };
    delete process.env.AWS_LAMBDA_FUNCTION_NAME;
    vi.resetModules();
    try {
      const { setLogSink } = await import('../src/log.ts');
      const { handler } = await import('../functions/verify-dataset.ts');
      const seen: string[] = [];
      const restoreSink = setLogSink((level, message) => seen.push(`${level}: ${message}`));
      const ctx = { ...of('VerifyDataset')[0]!.context, awsRequestId: randomUUID() };
      const inv = await invokeCaptured('VerifyDataset', ctx, () =>
        handler(of('VerifyDataset')[0]!.event, ctx),
      ).finally(restoreSink);
      // The inventory the run above wrote is reused: a second, cheap verification.
      expect(inv.error).toBeUndefined();
      expect((inv.result as VerifyResult).reused).toBe(true);
      expect(inv.lines).toEqual([]);
      expect(seen).toEqual([expect.stringMatching(/^info: .*verification reused from datasets\//)]);
    } finally {
      Object.assign(process.env, env);
    }
  });
});
