import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  GetExecutionHistoryCommand,
  type HistoryEvent,
  RedriveExecutionCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveStage } from '../src/aws/stage.ts';
import { Progress } from '../src/cli/progress.ts';
import { resumeOnStage, runOnStage } from '../src/cli/stage-run.ts';
import { InputError } from '../src/errors.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// `dogbreed run --stage`: Step Functions and CloudFormation are mocked (they need AWS itself);
// the stage's bucket is a real local S3 reached through DOGBREED_S3_ENDPOINT.

const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:dogbreed-pipeline-test';
const cfn = mockClient(CloudFormationClient);
const sfn = mockClient(SFNClient);

let t: TestS3;
let prevEndpoint: string | undefined;

const at = (s: number) => new Date(Date.UTC(2026, 10, 29, 12, 0, s));
/** History events as Step Functions returns them (ids in order, one second apart). */
function history(events: Record<string, unknown>[]): HistoryEvent[] {
  return events.map(
    (e, i) => ({ id: i + 1, timestamp: at(i), type: 'PassStateEntered', ...e }) as HistoryEvent,
  );
}
const entered = (type: string, name: string, input: unknown = {}) => ({
  type: `${type}StateEntered`,
  stateEnteredEventDetails: { name, input: JSON.stringify(input) },
});
const exited = (type: string, name: string) => ({
  type: `${type}StateExited`,
  stateExitedEventDetails: { name, output: '{}' },
});

function progressLines() {
  const lines: string[] = [];
  const progress = new Progress(
    (l) => lines.push(l),
    (_s, input) => ((input as { manifests?: { shards?: unknown[] } }).manifests?.shards ?? []) as unknown[],
    (_item, i) => `shard ${i}`,
  );
  return { lines, progress };
}

beforeAll(async () => {
  t = await startTestS3('dogbreed-test-bucket');
  prevEndpoint = process.env.DOGBREED_S3_ENDPOINT;
  process.env.DOGBREED_S3_ENDPOINT = t.s3.endpoint;
});
afterAll(async () => {
  if (prevEndpoint === undefined) delete process.env.DOGBREED_S3_ENDPOINT;
  else process.env.DOGBREED_S3_ENDPOINT = prevEndpoint;
  await t.close();
});
beforeEach(() => {
  cfn.reset();
  sfn.reset();
  cfn.on(DescribeStacksCommand, { StackName: 'dogbreed-pipeline-test' }).resolves({
    Stacks: [
      {
        StackName: 'dogbreed-pipeline-test',
        CreationTime: at(0),
        StackStatus: 'UPDATE_COMPLETE',
        Outputs: [
          { OutputKey: 'BucketName', OutputValue: 'dogbreed-test-bucket' },
          { OutputKey: 'PipelineStateMachineArn', OutputValue: STATE_MACHINE },
        ],
      },
    ],
  });
});
afterEach(() => {
  cfn.reset();
  sfn.reset();
});

describe('deployed stages', () => {
  it('finds the bucket and state machine from the stack outputs, and says how to deploy a missing stage', async () => {
    expect(await resolveStage('test', { region: 'us-east-1' })).toMatchObject({
      bucket: 'dogbreed-test-bucket',
      stateMachineArn: STATE_MACHINE,
      stackName: 'dogbreed-pipeline-test',
    });
    const missing = Object.assign(new Error('Stack with id dogbreed-pipeline-prod does not exist'), {
      name: 'ValidationError',
    });
    cfn.on(DescribeStacksCommand, { StackName: 'dogbreed-pipeline-prod' }).rejects(missing);
    await expect(resolveStage('prod', { region: 'eu-west-1' })).rejects.toThrow(
      new InputError(
        'stage prod is not deployed in eu-west-1 (no stack dogbreed-pipeline-prod): run `npx serverless deploy --stage prod --region eu-west-1` first, or pass --region',
      ),
    );
  });

  it('starts an execution named by the run id, follows it to success with progress, and prints the report', async () => {
    let runId = '';
    sfn
      .on(StartExecutionCommand)
      .callsFake(async (input: { name: string; stateMachineArn: string; input: string }) => {
        expect(input.stateMachineArn).toBe(STATE_MACHINE);
        expect(JSON.parse(input.input)).toEqual({
          config: { source: 's3://dogbreed-test-bucket/data/images.tar' },
        });
        runId = input.name;
        // the run's report, as WriteReport will have left it by the time the execution succeeds
        await t.store.putJson(`reports/${runId}/metrics.json`, METRICS(runId));
        return {
          executionArn: `${STATE_MACHINE.replace('stateMachine', 'execution')}:${input.name}`,
          startDate: at(0),
        };
      });
    sfn
      .on(GetExecutionHistoryCommand)
      .callsFakeOnce(() => ({
        events: history([{ type: 'ExecutionStarted' }, entered('Task', 'FetchDataset')]),
      }))
      .callsFake(() => ({
        events: history([
          { type: 'ExecutionStarted' },
          entered('Task', 'FetchDataset'),
          exited('Task', 'FetchDataset'),
          entered('Map', 'Preprocess', { manifests: { shards: [1, 2] } }),
          entered('Task', 'PreprocessShard'),
          {
            type: 'MapIterationSucceeded',
            mapIterationSucceededEventDetails: { name: 'Preprocess', index: 0 },
          },
          {
            type: 'MapIterationSucceeded',
            mapIterationSucceededEventDetails: { name: 'Preprocess', index: 1 },
          },
          exited('Map', 'Preprocess'),
          { type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: '{}' } },
        ]),
      }));
    const { lines, progress } = progressLines();
    const log = (l: string) => lines.push(l);
    const code = await runOnStage(
      { source: 's3://dogbreed-test-bucket/data/images.tar' },
      {
        stage: 'test',
        region: 'us-east-1',
        wait: true,
        progress,
        log,
        sfn: new SFNClient({ region: 'us-east-1' }),
        pollMs: 1,
      },
    );
    expect(code).toBe(0);
    expect(lines).toEqual(
      expect.arrayContaining([
        '▶ FetchDataset',
        '▶ Preprocess (2 shards)',
        '  [1/2] shard 0 done',
        '  [2/2] shard 1 done',
        `report: s3://dogbreed-test-bucket/reports/${runId}/report.html`,
      ]),
    );
    expect(lines.some((l) => /^accuracy +0\.812/.test(l))).toBe(true);
    // every history event was shown once, though the second page repeated the first
    expect(lines.filter((l) => l === '▶ FetchDataset')).toHaveLength(1);
  });

  it('uploads a local source to the stage bucket first, and --no-wait returns after starting', async () => {
    const started: string[] = [];
    sfn.on(StartExecutionCommand).callsFake((input: { input: string; name: string }) => {
      started.push(JSON.parse(input.input).config.source);
      return { executionArn: `arn:exec:${input.name}`, startDate: at(0) };
    });
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(await mkdtemp(join(tmpdir(), 'dogbreed-stage-')), 'mine.tar');
    await writeFile(file, Buffer.alloc(1024, 1));
    const { lines, progress } = progressLines();
    const code = await runOnStage(
      { source: file },
      {
        stage: 'test',
        wait: false,
        progress,
        log: (l) => lines.push(l),
        sfn: new SFNClient({ region: 'us-east-1' }),
      },
    );
    expect(code).toBe(0);
    expect(started).toEqual(['s3://dogbreed-test-bucket/datasets/_uploads/mine.tar']);
    expect((await t.store.getBytes('datasets/_uploads/mine.tar')).length).toBe(1024);
    expect(lines.at(-1)).toMatch(/^run \S+ started on stage test: arn:exec:/);
    expect(sfn.commandCalls(GetExecutionHistoryCommand)).toHaveLength(0);
  });

  it('follows a failed execution and shows the failing state and cause from failure.json', async () => {
    let runId = '';
    sfn.on(StartExecutionCommand).callsFake(async (input: { name: string }) => {
      runId = input.name;
      await t.store.putJson(`reports/${runId}/failure.json`, {
        runId,
        state: 'VerifyDataset',
        error: 'DataError',
        cause: 'datasets/x/images.tar: the tarball is truncated',
        failedAt: at(3).toISOString(),
      });
      return { executionArn: `arn:exec:${input.name}`, startDate: at(0) };
    });
    sfn.on(GetExecutionHistoryCommand).resolves({
      events: history([
        entered('Task', 'VerifyDataset'),
        {
          type: 'ExecutionFailed',
          executionFailedEventDetails: {
            error: 'DataError',
            cause: 'datasets/x/images.tar: the tarball is truncated',
          },
        },
      ]),
    });
    const { lines, progress } = progressLines();
    const code = await runOnStage(
      { source: 's3://b/k.tar' },
      {
        stage: 'test',
        wait: true,
        progress,
        log: (l) => lines.push(l),
        sfn: new SFNClient({ region: 'us-east-1' }),
        pollMs: 1,
      },
    );
    expect(code).toBe(1);
    expect(lines).toContain(
      `run ${runId} failed in VerifyDataset: DataError: datasets/x/images.tar: the tarball is truncated`,
    );
    expect(lines).toContain(`failure report: s3://dogbreed-test-bucket/reports/${runId}/failure.json`);
  });

  it('resume redrives the failed execution and follows only what ran after the redrive', async () => {
    const runId = '20261129-120000-abcd';
    const executionArn = `${STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${runId}`;
    await t.store.putJson(`reports/${runId}/failure.json`, {
      runId,
      state: 'Validate',
      error: 'TransientError',
      cause: 'S3 SlowDown',
      failedAt: at(3).toISOString(),
    });
    const redriven: string[] = [];
    sfn.on(RedriveExecutionCommand).callsFake(async (input: { executionArn: string }) => {
      redriven.push(input.executionArn);
      await t.store.putJson(`reports/${runId}/metrics.json`, METRICS(runId));
      return { redriveDate: at(10) };
    });
    sfn.on(GetExecutionHistoryCommand, { executionArn }).resolves({
      events: history([
        entered('Task', 'TrainModel'),
        exited('Task', 'TrainModel'),
        entered('Map', 'Validate'),
        { type: 'ExecutionFailed', executionFailedEventDetails: { error: 'TransientError', cause: 'x' } },
        { type: 'ExecutionRedriven' },
        entered('Map', 'Validate'),
        exited('Map', 'Validate'),
        entered('Task', 'WriteReport'),
        exited('Task', 'WriteReport'),
        { type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: '{}' } },
      ]),
    });
    const { lines, progress } = progressLines();
    const code = await resumeOnStage(runId, {
      stage: 'test',
      wait: true,
      progress,
      log: (l) => lines.push(l),
      sfn: new SFNClient({ region: 'us-east-1' }),
      pollMs: 1,
    });
    expect(code, lines.join('\n')).toBe(0);
    expect(redriven).toEqual([executionArn]);
    expect(lines).toContain(`run ${runId} resumed on stage test from Validate: ${executionArn}`);
    // The GPU job of the first attempt is not shown again: only the redriven states are, from the
    // state that failed (nothing catches a failure, so the execution failed in Validate itself).
    expect(lines.some((l) => l.startsWith('▶ TrainModel'))).toBe(false);
    expect(lines.filter((l) => l.startsWith('▶ '))).toEqual(['▶ Validate (0 shards)', '▶ WriteReport']);
    expect(await t.store.head(`reports/${runId}/failure.json`)).toBeUndefined();
    const resumes = await t.store.getJson<{ fromState: string; how: string }[]>(
      `runs/${runId}/execution/resumes.json`,
    );
    expect(resumes).toMatchObject([{ fromState: 'Validate', how: 'redrive' }]);
  });

  it('resume names an execution that cannot be redriven and says what can', async () => {
    const err = Object.assign(new Error('Execution is not redrivable'), { name: 'ExecutionNotRedrivable' });
    sfn.on(RedriveExecutionCommand).rejects(err);
    const { lines, progress } = progressLines();
    await expect(
      resumeOnStage('20261129-120000-ffff', {
        stage: 'test',
        wait: true,
        progress,
        log: (l) => lines.push(l),
        sfn: new SFNClient({ region: 'us-east-1' }),
      }),
    ).rejects.toThrow(/cannot resume .*20261129-120000-ffff: Execution is not redrivable \(only a failed/);
  });
});

function METRICS(runId: string) {
  const prf = { precision: 0.8, recall: 0.81, f1: 0.805 };
  return {
    schemaVersion: 1,
    runId,
    createdAt: at(9).toISOString(),
    dataset: { datasetId: 'abcd', sha256: 'ab' },
    model: { runId, key: 'k', sha256: 's', backbone: 'mobilenet', bestEpoch: 2, valAccuracy: 0.8 },
    counts: { train: 10, val: 2, test: 2, classes: 2 },
    accuracy: 0.8124,
    top5Accuracy: 1,
    logLoss: 0.5,
    micro: prf,
    macro: prf,
    weighted: prf,
    perClass: [],
    confusion: [],
    mostConfused: [],
    gate: { passed: true, thresholds: {}, reasons: ['accuracy 0.812 ≥ 0.600 ✓'] },
    promotion: { promoted: true, reason: 'promoted: no champion yet' },
    timings: {},
  };
}
