import { GetExecutionHistoryCommand, type HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler } from '../functions/report-failure.ts';
import { InputError } from '../src/errors.ts';
import { type ExecutionStatusChange, parseExecutionStatusChange } from '../src/execution-status-event.ts';
import { useLocalS3 } from '../src/local/pipeline.ts';
import { readRun } from '../src/queries/runs.ts';
import { readableCause, reportFailure } from '../src/stages/report-failure.ts';
import type { FailureReport } from '../src/types.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// What failure.json (and the CLI, which prints it) says when an execution ends FAILED,
// TIMED_OUT or ABORTED: the state it ended in, read from the execution's history, and the
// error and cause of the EventBridge event, whatever kind of Cause it is (a Lambda error, a
// failed or cancelled Batch job, a plain local message). GetExecutionHistory needs AWS itself:
// mocked; the bucket is a real local S3.

const RUNNABLE_REASON =
  'no GPU capacity: the job waited RUNNABLE too long; check the G-instance vCPU quota (Service Quotas: EC2, L-3819A6DF spot / L-DB2E81BA on-demand) and batchMaxvCpus';

/** The Cause of a failed batch:submitJob.sync: the job's DescribeJobs entry, as JSON. */
const batchCause = (job: Record<string, unknown>) =>
  JSON.stringify({
    JobArn: 'arn:aws:batch:us-east-1:123456789012:job/0f1e2d3c',
    JobId: '0f1e2d3c',
    JobName: 'train-run-1',
    JobQueue: 'arn:aws:batch:us-east-1:123456789012:job-queue/dogbreed-pipeline-dev-train',
    Status: 'FAILED',
    CreatedAt: 1_764_650_000_000,
    ...job,
  });

const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:dogbreed-pipeline-dev';
const executionArn = (runId: string) => `${STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${runId}`;

/** The EventBridge event of an execution that ended `status` (the shape the AWS docs show). */
function statusChange(
  runId: string,
  status: 'FAILED' | 'TIMED_OUT' | 'ABORTED',
  more: Partial<ExecutionStatusChange['detail']> = {},
): ExecutionStatusChange {
  return {
    version: '0',
    id: '315c1398-40ff-a850-213b-158f73e60175',
    'detail-type': 'Step Functions Execution Status Change',
    source: 'aws.states',
    account: '123456789012',
    time: '2026-12-02T10:00:00Z',
    region: 'us-east-1',
    resources: [executionArn(runId)],
    detail: {
      executionArn: executionArn(runId),
      stateMachineArn: STATE_MACHINE,
      name: runId,
      status,
      startDate: 1_764_669_000_000,
      stopDate: 1_764_669_600_000,
      input: '{"config":{"source":"s3://b/datasets/_uploads/sample.tar"}}',
      inputDetails: { included: true },
      output: null,
      outputDetails: null,
      redriveCount: 0,
      redriveStatus: 'REDRIVABLE',
      ...more,
    },
  };
}

/** History events as GetExecutionHistory returns them, oldest first. */
function history(...events: Partial<HistoryEvent>[]): HistoryEvent[] {
  return events.map(
    (e, i) => ({ id: i + 1, timestamp: new Date(1_764_669_000_000 + i * 1000), ...e }) as HistoryEvent,
  );
}
async function* each(events: HistoryEvent[]) {
  yield* events;
}
const entered = (type: string, name: string): Partial<HistoryEvent> => ({
  type: `${type}StateEntered` as HistoryEvent['type'],
  stateEnteredEventDetails: { name },
});
const exited = (type: string, name: string): Partial<HistoryEvent> => ({
  type: `${type}StateExited` as HistoryEvent['type'],
  stateExitedEventDetails: { name },
});
const iteration = (
  what: 'Started' | 'Succeeded' | 'Failed' | 'Aborted',
  index: number,
): Partial<HistoryEvent> => ({
  type: `MapIteration${what}`,
  [`mapIteration${what}EventDetails`]: { name: 'Preprocess', index },
});
/** Init → FetchDataset → VerifyDataset → BuildManifests, all succeeded. */
const upToManifests = [
  { type: 'ExecutionStarted' },
  entered('Pass', 'Init'),
  exited('Pass', 'Init'),
  ...['FetchDataset', 'VerifyDataset', 'BuildManifests'].flatMap((n) => [
    entered('Task', n),
    { type: 'LambdaFunctionSucceeded' },
    exited('Task', n),
  ]),
] as Partial<HistoryEvent>[];
/** Preprocess with two shards, both done. */
const preprocessed = [
  entered('Map', 'Preprocess'),
  iteration('Started', 0),
  entered('Task', 'PreprocessShard'),
  iteration('Started', 1),
  entered('Task', 'PreprocessShard'),
  exited('Task', 'PreprocessShard'),
  iteration('Succeeded', 1),
  exited('Task', 'PreprocessShard'),
  iteration('Succeeded', 0),
  exited('Map', 'Preprocess'),
] as Partial<HistoryEvent>[];

describe('ReportFailure', () => {
  let t: TestS3;
  beforeAll(async () => {
    t = await startTestS3();
  });
  afterAll(() => t.close());

  it('names the Task the execution failed in and writes the reason a queue cancelled its training job', async () => {
    const failed = parseExecutionStatusChange(
      statusChange('run-1', 'FAILED', {
        error: 'States.TaskFailed',
        cause: batchCause({ StatusReason: RUNNABLE_REASON, Attempts: [] }),
      }),
    );
    const events = history(
      ...upToManifests,
      ...preprocessed,
      entered('Task', 'TrainModel'),
      {
        type: 'TaskFailed',
      },
      { type: 'ExecutionFailed', executionFailedEventDetails: { error: 'States.TaskFailed' } },
    );
    const out = await reportFailure(t.store, failed, each(events));
    const report = await t.store.getJson<FailureReport>('reports/run-1/failure.json');
    expect(report).toEqual({
      runId: 'run-1',
      state: 'TrainModel',
      error: 'States.TaskFailed',
      cause: `Batch job train-run-1 FAILED: ${RUNNABLE_REASON}`,
      failedAt: expect.any(String),
    });
    expect(out).toMatchObject({ ...report, failureKey: 'reports/run-1/failure.json' });
  });

  it('names the Map, not the state inside its iterations, when a shard fails', async () => {
    const failed = parseExecutionStatusChange(
      statusChange('run-map', 'FAILED', {
        error: 'DataError',
        cause: JSON.stringify({ errorType: 'DataError', errorMessage: 'a/bomb.jpg: too many pixels' }),
      }),
    );
    const events = history(
      ...upToManifests,
      entered('Map', 'Preprocess'),
      iteration('Started', 0),
      entered('Task', 'PreprocessShard'),
      iteration('Started', 1),
      entered('Task', 'PreprocessShard'),
      { type: 'LambdaFunctionFailed' },
      iteration('Failed', 1),
      iteration('Aborted', 0),
      { type: 'MapStateFailed' },
      { type: 'ExecutionFailed' },
    );
    const out = await reportFailure(t.store, failed, each(events));
    expect(out).toMatchObject({
      state: 'Preprocess',
      error: 'DataError',
      cause: 'a/bomb.jpg: too many pixels',
    });
  });

  it('reports a timed-out and a stopped execution too, with the state it was in', async () => {
    // Timed out while shards were being preprocessed: the event has no error of its own.
    const timedOut = await reportFailure(
      t.store,
      parseExecutionStatusChange(statusChange('run-slow', 'TIMED_OUT')),
      each(
        history(
          ...upToManifests,
          entered('Map', 'Preprocess'),
          iteration('Started', 0),
          entered('Task', 'PreprocessShard'),
          {
            type: 'ExecutionTimedOut',
            executionTimedOutEventDetails: {},
          },
        ),
      ),
    );
    expect(timedOut).toMatchObject({
      state: 'Preprocess',
      error: 'States.Timeout',
      cause: 'the execution timed out',
    });
    // Stopped with StopExecution's error and cause, in TrainModel after one redrive.
    const stopped = await reportFailure(
      t.store,
      parseExecutionStatusChange(statusChange('run-stop', 'ABORTED', { redriveCount: 1 })),
      each(
        history(
          ...upToManifests,
          ...preprocessed,
          entered('Task', 'TrainModel'),
          { type: 'ExecutionFailed' },
          { type: 'ExecutionRedriven', executionRedrivenEventDetails: { redriveCount: 1 } },
          entered('Task', 'TrainModel'),
          {
            type: 'ExecutionAborted',
            executionAbortedEventDetails: { error: 'Operator', cause: 'wrong dataset' },
          },
        ),
      ),
    );
    expect(stopped).toMatchObject({ state: 'TrainModel', error: 'Operator', cause: 'wrong dataset' });
    expect(await t.store.getJson<FailureReport>('reports/run-stop/failure.json')).toMatchObject({
      state: 'TrainModel',
    });
  });

  it('writes nothing for an attempt that has been redriven since (a late event)', async () => {
    const out = await reportFailure(
      t.store,
      parseExecutionStatusChange(statusChange('run-late', 'FAILED', { error: 'DataError', cause: 'x' })),
      each(
        history(
          ...upToManifests,
          { type: 'ExecutionFailed' },
          { type: 'ExecutionRedriven' },
          entered('Map', 'Preprocess'),
        ),
      ),
    );
    expect(out).toEqual({ runId: 'run-late', superseded: true });
    expect(await t.store.head('reports/run-late/failure.json')).toBeUndefined();
  });

  it('a run whose resume succeeded is listed as succeeded, even with a stale failure.json beside its metrics', async () => {
    await t.store.putJson('reports/run-both/failure.json', { runId: 'run-both', state: 'Validate' });
    await t.store.putJson('reports/run-both/metrics.json', { runId: 'run-both' });
    expect((await readRun(t.store, 'run-both')).status).toBe('succeeded');
  });

  it('the Lambda handler reads the whole history with GetExecutionHistory, page by page', async () => {
    const sfn = mockClient(SFNClient);
    const restore = useLocalS3(t.s3.endpoint, t.store.bucket);
    try {
      const events = history(...upToManifests, ...preprocessed, entered('Task', 'TrainModel'), {
        type: 'ExecutionFailed',
      });
      const asked: (string | undefined)[] = [];
      sfn
        .on(GetExecutionHistoryCommand)
        .callsFake(async (input: { executionArn: string; nextToken?: string }) => {
          expect(input.executionArn).toBe(executionArn('run-paged'));
          asked.push(input.nextToken);
          return input.nextToken
            ? { events: events.slice(10) }
            : { events: events.slice(0, 10), nextToken: 'p2' };
        });
      const event = statusChange('run-paged', 'FAILED', { error: 'States.TaskFailed', cause: 'exit code 3' });
      const out = await handler(event, {} as Context);
      expect(asked).toEqual([undefined, 'p2']);
      expect(out).toMatchObject({
        runId: 'run-paged',
        state: 'TrainModel',
        failureKey: 'reports/run-paged/failure.json',
      });
    } finally {
      restore();
      sfn.restore();
    }
  });

  it('refuses an event that is not an execution status change, or not a failed one, saying what it got', () => {
    expect(() => parseExecutionStatusChange({ 'detail-type': 'Object Created', detail: {} })).toThrow(
      new InputError(
        `event.detail-type must be "Step Functions Execution Status Change" (is the EventBridge rule's pattern the one in serverless.yml?), got "Object Created"`,
      ),
    );
    expect(() => parseExecutionStatusChange(statusChange('r', 'FAILED', { status: 'SUCCEEDED' }))).toThrow(
      'event.detail.status must be one of FAILED, TIMED_OUT, ABORTED, got "SUCCEEDED"',
    );
    expect(() => parseExecutionStatusChange(statusChange('r', 'FAILED', { name: 'a/b' }))).toThrow(
      new InputError(
        'event.detail.name must be 1 to 80 letters, digits, _ . or -, starting with a letter or digit, got "a/b"',
      ),
    );
    expect(() =>
      parseExecutionStatusChange(statusChange('r', 'FAILED', { executionArn: 'arn:aws:s3:::b' })),
    ).toThrow(
      new InputError(
        'event.detail.executionArn must be a Step Functions execution ARN, got "arn:aws:s3:::b"',
      ),
    );
  });

  it('says what the last attempt of a failed job did and where its log is', () => {
    const cause = batchCause({
      StatusReason: 'Essential container in task exited',
      Attempts: [
        {
          StatusReason: 'Host EC2 (instance i-0abc) terminated.',
          Container: { LogStreamName: 'train/default/a1' },
        },
        {
          StatusReason: 'Essential container in task exited',
          Container: { ExitCode: 2, LogStreamName: 'train/default/b2' },
        },
      ],
    });
    expect(readableCause(cause)).toBe(
      'Batch job train-run-1 FAILED: Essential container in task exited; attempt 2: exit code 2, log stream train/default/b2',
    );
    const pull = batchCause({
      StatusReason: 'Task failed to start',
      Attempts: [
        {
          StatusReason: 'Task failed to start',
          Container: { Reason: 'CannotPullContainerError: repository:none not found' },
        },
      ],
    });
    expect(readableCause(pull)).toBe(
      'Batch job train-run-1 FAILED: Task failed to start; attempt 1: CannotPullContainerError: repository:none not found',
    );
  });

  it('keeps the message of a Lambda error, a plain message, and any other JSON as it is', () => {
    expect(readableCause(JSON.stringify({ errorType: 'DataError', errorMessage: 'tar truncated' }))).toBe(
      'tar truncated',
    );
    expect(readableCause('job train-x exited with code 3')).toBe('job train-x exited with code 3');
    expect(readableCause('{"something":"else"}')).toBe('{"something":"else"}');
    expect(readableCause('42')).toBe('42');
  });
});
