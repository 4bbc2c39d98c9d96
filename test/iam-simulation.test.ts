import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionArnOf } from '../src/aws/execution.ts';
import type { RecordedCall } from '../src/storage/call-log.ts';
import {
  ACCOUNT,
  allStates,
  type Decision,
  type IamRequest,
  iamRequests,
  PARTITION,
  REGION,
  StackResolver,
  simulate,
  type Template,
} from './helpers/iam.ts';
import { type Json, packageService } from './helpers/serverless-package.ts';

// IAM proven by simulation, from what the code actually calls. A real local end-to-end run
// (the demo flow on the synthetic sample, its source uploaded to the bucket first as the CLI
// does for a deployed stage; a second run that finds the dataset and a champion already there;
// a failing run; one upload classified through the S3 notification) records every S3 call
// with the function or job that made it. Each call, as the IAM requests S3 authorises for it,
// is evaluated against that caller's role in the packaged template, with the stage's concrete
// names, by @cloud-copilot/iam-simulate: every one must be allowed. Calls the design forbids
// must be denied.

const LOCAL_BUCKET_NAME = 'dogbreed-local';

let workspace: string;
let calls: RecordedCall[];
let stack: StackResolver;
/** The ARN of the stage's data bucket. */
let bucket: string;

beforeAll(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'dogbreed-iam-'));
  const log = join(workspace, 'calls.jsonl');
  // Read once where the S3 clients are built: set before the project's modules load.
  process.env.DOGBREED_AWS_CALL_LOG = log;
  const packaged = packageService(); // a child process: packs while the pipeline runs
  const { writeSampleTarball } = await import('../src/dataset/sample-data.ts');
  const { readTar } = await import('../src/dataset/tar-reader.ts');
  const { packTar } = await import('../src/dataset/tar-writer.ts');
  const { withWorkspaceStore } = await import('../src/cli/workspace.ts');
  const { runLocalPipeline, LOCAL_BUCKET } = await import('../src/local/pipeline.ts');
  const { startLocalS3 } = await import('../src/local/s3-server.ts');
  const { attachUploadTrigger } = await import('../src/local/upload-trigger.ts');
  const { openStore } = await import('../src/storage/s3-store.ts');
  expect(LOCAL_BUCKET).toBe(LOCAL_BUCKET_NAME);

  const sampleTar = join(workspace, 'sample.tar');
  await writeSampleTarball(join(workspace, 'images.tar'), { classes: 4, perClass: 12, seed: 7 });
  // Plus a 9 MiB file outside the class folders (indexed as one invalid entry, 2%): the
  // tarball outgrows one 8 MiB part, so FetchDataset's upload is multipart, as a real one is.
  const members: { name: string; data: Buffer }[] = [];
  for await (const e of readTar(createReadStream(join(workspace, 'images.tar'))))
    if (e.data) members.push({ name: e.name, data: Buffer.from(e.data) });
  await writeFile(sampleTar, packTar([...members, { name: 'LICENSE.bin', data: Buffer.alloc(9 << 20, 7) }]));
  // As `dogbreed run --stage` does: the operator's own credentials upload the local file first.
  const staged = 'datasets/_uploads/sample.tar';
  await withWorkspaceStore(workspace, async (store) => {
    await store.upload(staged, createReadStream(sampleTar), { contentType: 'application/x-tar' });
  });
  const config = { source: `s3://${LOCAL_BUCKET}/${staged}`, seed: 3, shardSize: 10, resizeShorter: 64 };
  for (const runId of ['iam-first', 'iam-second']) {
    const run = await runLocalPipeline({ workspace, config, runId });
    expect(run.status, `${runId}: ${run.error}: ${run.cause}`).toBe('SUCCEEDED');
  }
  const failed = await runLocalPipeline({
    workspace,
    config: { ...config, source: `s3://${LOCAL_BUCKET}/datasets/_uploads/missing.tar` },
    runId: 'iam-failed',
  });
  expect(failed.status).toBe('FAILED');
  expect(failed.failure?.state).toBe('FetchDataset');

  // One upload, classified through the S3 notification as on AWS.
  const image = members.find((m) => m.name.endsWith('.jpg'))?.data;
  const s3 = await startLocalS3({ directory: join(workspace, 's3'), bucket: LOCAL_BUCKET });
  const trigger = attachUploadTrigger(s3);
  try {
    const store = openStore({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint });
    await store.put('uploads/dog.jpg', image!);
    await trigger.idle();
    expect(await store.head('predictions/dog.jpg.json')).toBeDefined();
  } finally {
    trigger.detach();
    await s3.close();
  }
  delete process.env.DOGBREED_AWS_CALL_LOG;

  calls = (await readFile(log, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RecordedCall);
  stack = new StackResolver((await packaged).template as unknown as Template);
  bucket = `arn:${PARTITION}:s3:::${stack.bucketName}`;
}, 400_000);
afterAll(() => (workspace ? rm(workspace, { recursive: true, force: true }) : undefined));

/** A recorded call as made on the stage: the local bucket is the stage's data bucket. */
const onStage = (call: RecordedCall): RecordedCall => {
  const rename = (b: string) => (b === LOCAL_BUCKET_NAME ? stack.bucketName : b);
  const copy = call.copySource?.replace(/^\/?([^/]+)/, (_m, b: string) => rename(b));
  return { ...call, bucket: rename(call.bucket), ...(copy ? { copySource: copy } : {}) };
};

const describeRequest = (caller: string, role: string, r: IamRequest) =>
  `${caller} (${role}): ${r.action} on ${r.resource}${Object.keys(r.context).length ? ` with ${JSON.stringify(r.context)}` : ''}`;

/** Each distinct (caller, IAM request), with the role it runs as. */
function requestsOf(recorded: RecordedCall[]) {
  const seen = new Map<string, { caller: string; role: string; request: IamRequest }>();
  for (const call of recorded) {
    if (!call.caller) continue;
    const role = stack.roleOf(call.caller);
    for (const request of iamRequests(onStage(call))) {
      seen.set(describeRequest(call.caller, role, request), { caller: call.caller, role, request });
    }
  }
  return [...seen.entries()];
}

async function decisions(requests: ReturnType<typeof requestsOf>): Promise<Map<string, Decision>> {
  const out = new Map<string, Decision>();
  for (const [text, { role, request }] of requests) out.set(text, await simulate(stack, role, request));
  return out;
}

describe('IAM of the packaged stack, against the calls of a real local run', () => {
  it('recorded the calls of every Lambda function and the training job', () => {
    const callers = new Set(calls.map((c) => c.caller).filter(Boolean));
    const tasks = allStates()
      .filter(([, s]) => s.Type === 'Task')
      .map(([name]) => name);
    expect([...callers].sort()).toEqual([...tasks, 'ClassifyUpload', 'ReportFailure'].sort());
    // Listing with a prefix, multipart, copy, delete and a HEAD and a GET of a missing key all happened,
    // so their mapping was exercised.
    const commands = new Set(calls.filter((c) => c.caller).map((c) => c.command));
    for (const c of [
      'GetObject',
      'HeadObject',
      'PutObject',
      'ListObjectsV2',
      'CreateMultipartUpload',
      'UploadPart',
      'CompleteMultipartUpload',
      'CopyObject',
      'DeleteObject',
    ])
      expect(commands, c).toContain(c);
    for (const c of ['HeadObject', 'GetObject'])
      expect(
        calls.some((call) => call.caller && call.command === c && call.missing),
        c,
      ).toBe(true);
  });

  it('allows every call the code made, each under its own role', async () => {
    const requests = requestsOf(calls);
    expect(requests.length).toBeGreaterThan(20);
    const denied = [...(await decisions(requests))].filter(([, d]) => d !== 'Allowed');
    expect(
      denied.map(([text, d]) => `${text} → ${d}`),
      'calls the code makes that the template does not grant',
    ).toEqual([]);
  }, 120_000);

  it('denies each of those calls on any other bucket', async () => {
    const elsewhere = calls
      .filter((c) => c.caller)
      .map((c) => ({ ...onStage(c), bucket: 'someone-elses-bucket', copySource: undefined }))
      .filter((c) => c.command !== 'CopyObject');
    const allowed = [...(await decisions(requestsOf(elsewhere)))].filter(([, d]) => d === 'Allowed');
    expect(allowed.map(([text]) => text)).toEqual([]);
  }, 120_000);

  const denials: [string, string, string, string, Record<string, string>?][] = [
    [
      'ClassifyUpload writes under uploads/ (its own trigger: the recursion guard)',
      'ClassifyUpload',
      's3:PutObject',
      'uploads/dog.jpg.json',
    ],
    [
      'ClassifyUpload writes a prediction where uploads trigger it',
      'ClassifyUpload',
      's3:PutObject',
      'uploads/predictions/x.jpg',
    ],
    ['ValidateShard promotes a model', 'ValidateShard', 's3:PutObject', 'models/current.json'],
    ['PreprocessShard promotes a model', 'PreprocessShard', 's3:PutObject', 'models/current.json'],
    ['the training job promotes its own model', 'TrainModel', 's3:PutObject', 'models/current.json'],
    ['ClassifyUpload overwrites a run’s model', 'ClassifyUpload', 's3:PutObject', 'runs/r/model/model.onnx'],
    ['ReportFailure writes metrics', 'ReportFailure', 's3:PutObject', 'reports/r/metrics.json'],
    ['FetchDataset deletes a verified dataset', 'FetchDataset', 's3:DeleteObject', 'datasets/abc/images.tar'],
    ['ClassifyUpload lists runs', 'ClassifyUpload', 's3:ListBucket', '', { 's3:prefix': 'runs/' }],
    ['WriteReport lists the whole bucket', 'WriteReport', 's3:ListBucket', '', { 's3:prefix': '' }],
  ];
  it.each(denials)('denies: %s', async (_what, caller, action, key, context = {}) => {
    const role = stack.roleOf(caller);
    const resource = key ? `${bucket}/${key}` : bucket;
    expect(await simulate(stack, role, { action, resource, context })).not.toBe('Allowed');
  });

  it('lets ReportFailure read the history of the executions its EventBridge rule reports, and no other', async () => {
    // The rule's state machine, and the execution ARN its events carry (executions are named by run id).
    const [rule] = Object.values(stack.template.Resources).filter((r) => r.Type === 'AWS::Events::Rule');
    const pattern = stack.resolve(rule!.Properties.EventPattern as Json) as {
      detail: { stateMachineArn: string[] };
    };
    const [stateMachineArn] = pattern.detail.stateMachineArn;
    expect(stateMachineArn).toBe(stack.ref('PipelineStateMachine'));
    const history = (resource: string) => ({ action: 'states:GetExecutionHistory', resource, context: {} });
    const role = stack.roleOf('ReportFailure');
    expect(await simulate(stack, role, history(executionArnOf(stateMachineArn!, 'iam-failed')))).toBe(
      'Allowed',
    );
    const other = `arn:${PARTITION}:states:${REGION}:${ACCOUNT}:stateMachine:someone-elses`;
    expect(await simulate(stack, role, history(executionArnOf(other, 'iam-failed')))).not.toBe('Allowed');
    expect(
      await simulate(
        stack,
        stack.roleOf('WriteReport'),
        history(executionArnOf(stateMachineArn!, 'iam-failed')),
      ),
    ).not.toBe('Allowed');
  });

  describe('the state machine’s role', () => {
    const fnArn = (name: string) =>
      `arn:${PARTITION}:lambda:${REGION}:${ACCOUNT}:function:${stack.ref(`${name}LambdaFunction`)}`;
    const lambdaTasks = () =>
      allStates()
        .filter(([, s]) => String(s.Resource).endsWith('FunctionArn}'))
        .map(([name]) => name);

    it('may invoke every function its definition orchestrates, and submit the training job', async () => {
      const role = stack.stateMachineRole();
      for (const name of lambdaTasks()) {
        const resource = stack.string(stack.substitutions()[`${name}FunctionArn`]!, name);
        expect(resource).toBe(fnArn(name));
        expect(
          await simulate(stack, role, { action: 'lambda:InvokeFunction', resource, context: {} }),
          name,
        ).toBe('Allowed');
      }
      const subs = stack.substitutions();
      for (const resource of [
        stack.string(subs.TrainJobQueueArn!, 'queue'),
        stack.string(subs.TrainJobDefinitionArn!, 'job'),
      ])
        expect(
          await simulate(stack, role, { action: 'batch:SubmitJob', resource, context: {} }),
          resource,
        ).toBe('Allowed');
    });

    it('may not invoke a function it does not orchestrate (ClassifyUpload), nor another stack’s', async () => {
      const role = stack.stateMachineRole();
      expect(lambdaTasks()).not.toContain('ClassifyUpload');
      for (const resource of [
        fnArn('ClassifyUpload'),
        `arn:${PARTITION}:lambda:${REGION}:${ACCOUNT}:function:some-other-function`,
      ])
        expect(
          await simulate(stack, role, { action: 'lambda:InvokeFunction', resource, context: {} }),
          resource,
        ).not.toBe('Allowed');
    });
  });
});

describe('S3 calls as IAM requests', () => {
  const b = 'bkt';
  const arn = (k?: string) => (k === undefined ? `arn:aws:s3:::${b}` : `arn:aws:s3:::${b}/${k}`);
  it.each([
    [{ command: 'GetObject', key: 'a/b' }, [['s3:GetObject', arn('a/b')]]],
    [{ command: 'HeadObject', key: 'a/b' }, [['s3:GetObject', arn('a/b')]]],
    [{ command: 'PutObject', key: 'a' }, [['s3:PutObject', arn('a')]]],
    [
      { command: 'PutObject', key: 'a', tagging: true },
      [
        ['s3:PutObject', arn('a')],
        ['s3:PutObjectTagging', arn('a')],
      ],
    ],
    [{ command: 'CreateMultipartUpload', key: 'a' }, [['s3:PutObject', arn('a')]]],
    [{ command: 'UploadPart', key: 'a' }, [['s3:PutObject', arn('a')]]],
    [{ command: 'CompleteMultipartUpload', key: 'a' }, [['s3:PutObject', arn('a')]]],
    [{ command: 'AbortMultipartUpload', key: 'a' }, [['s3:AbortMultipartUpload', arn('a')]]],
    [{ command: 'DeleteObject', key: 'a' }, [['s3:DeleteObject', arn('a')]]],
    [
      { command: 'CopyObject', key: 'to/x', copySource: 'src/from/a%20b.tar' },
      [
        ['s3:GetObject', 'arn:aws:s3:::src/from/a b.tar'],
        ['s3:PutObject', arn('to/x')],
      ],
    ],
  ] as [Partial<RecordedCall>, [string, string][]][])('%o', (call, expected) => {
    const got = iamRequests({ service: 's3', bucket: b, command: '', ...call } as RecordedCall);
    expect(got.map((r) => [r.action, r.resource])).toEqual(expected);
  });

  it.each(['HeadObject', 'GetObject'])(
    'a %s of a missing key also needs the listing that tells missing from forbidden',
    (command) => {
      expect(
        iamRequests({ service: 's3', bucket: b, command, key: 'models/current.json', missing: true }),
      ).toEqual([
        { action: 's3:GetObject', resource: arn('models/current.json'), context: {} },
        { action: 's3:ListBucket', resource: arn(), context: { 's3:prefix': 'models/current.json' } },
      ]);
    },
  );

  it('a listing is s3:ListBucket on the bucket, with s3:prefix', () => {
    expect(
      iamRequests({ service: 's3', bucket: b, command: 'ListObjectsV2', prefix: 'models/current.json' }),
    ).toEqual([
      { action: 's3:ListBucket', resource: arn(), context: { 's3:prefix': 'models/current.json' } },
    ]);
  });

  it('an unmapped command fails, naming the caller and the command', () => {
    expect(() =>
      iamRequests({ caller: 'WriteReport', service: 's3', bucket: b, command: 'PutBucketPolicy' }),
    ).toThrow('WriteReport made an S3 PutBucketPolicy call');
  });
});
