import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFailureEvent } from '../src/events.ts';
import { readableCause, reportFailure } from '../src/stages/report-failure.ts';
import type { FailureReport } from '../src/types.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// What failure.json (and the CLI, which prints it) says for each kind of Cause a Catch hands to
// ReportFailure: a Lambda error, a failed or cancelled Batch job, a plain local message.

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

describe('ReportFailure', () => {
  let t: TestS3;
  beforeAll(async () => {
    t = await startTestS3();
  });
  afterAll(() => t.close());

  it('writes the reason a queue cancelled a RUNNABLE training job into failure.json', async () => {
    const event = parseFailureEvent({
      runId: 'run-1',
      state: 'TrainModel',
      error: {
        Error: 'States.TaskFailed',
        Cause: batchCause({ StatusReason: RUNNABLE_REASON, Attempts: [] }),
      },
    });
    const out = await reportFailure(t.store, event);
    const report = await t.store.getJson<FailureReport>('reports/run-1/failure.json');
    expect(report).toEqual({
      runId: 'run-1',
      state: 'TrainModel',
      error: 'States.TaskFailed',
      cause: `Batch job train-run-1 FAILED: ${RUNNABLE_REASON}`,
      failedAt: out.failedAt,
    });
    // What the state machine passes on to its Fail state and the CLI prints.
    expect(out.cause).toBe(report.cause);
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
