import { InputError } from './errors.ts';
import { integer, object, oneOf, RUN_ID, string } from './validate.ts';

// The event ReportFailure runs on: EventBridge's "Step Functions Execution Status Change", as
// Step Functions sends it for a Standard workflow's execution (the shape of
// https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html; dates in epoch ms).
// The rule in serverless.yml passes only the ends that are not a success; the local runtime
// builds the same event when a local execution ends so (src/local/failure-rule.ts).

export const EXECUTION_STATUS_CHANGE = 'Step Functions Execution Status Change';
export const FAILED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;
export type FailedStatus = (typeof FAILED_STATUSES)[number];

export interface ExecutionStatusChange {
  version: '0';
  id: string;
  'detail-type': typeof EXECUTION_STATUS_CHANGE;
  source: 'aws.states';
  account: string;
  time: string;
  region: string;
  /** The execution's ARN. */
  resources: string[];
  detail: {
    executionArn: string;
    stateMachineArn: string;
    /** The execution's name: the run id (the state machine's Init state reads it from there). */
    name: string;
    status: 'RUNNING' | 'SUCCEEDED' | FailedStatus | 'PENDING_REDRIVE';
    startDate: number;
    stopDate: number | null;
    /** The execution input as JSON; left out (inputDetails.included false) over 248 KiB. */
    input: string | null;
    inputDetails: { included: boolean };
    output: string | null;
    outputDetails: { included: boolean } | null;
    /** Set for FAILED (the failing state's error), absent or null otherwise. */
    error?: string | null;
    cause?: string | null;
    /** Redrives so far: 0 for the first attempt. */
    redriveCount?: number;
    redriveDate?: number | null;
    redriveStatus?: string;
    redriveStatusReason?: string;
  };
}

/** What ReportFailure reads from the event. */
export interface FailedExecution {
  runId: string;
  executionArn: string;
  status: FailedStatus;
  error?: string;
  cause?: string;
  /** Which attempt ended: a report for an attempt that was redriven since is stale. */
  redriveCount: number;
}

const optionalText = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

export function parseExecutionStatusChange(event: unknown): FailedExecution {
  const e = object(event, 'event');
  if (e['detail-type'] !== EXECUTION_STATUS_CHANGE) {
    throw new InputError(
      `event.detail-type must be "${EXECUTION_STATUS_CHANGE}", got ${JSON.stringify(e['detail-type'])}: is the EventBridge rule's pattern the one in serverless.yml?`,
    );
  }
  const d = object(e.detail, 'event.detail');
  return {
    runId: string(d.name, 'event.detail.name', RUN_ID),
    executionArn: string(
      d.executionArn,
      'event.detail.executionArn',
      /^arn:[\w-]+:states:[^:]*:\d*:execution:/,
    ),
    status: oneOf(d.status, 'event.detail.status', FAILED_STATUSES),
    error: optionalText(d.error),
    cause: optionalText(d.cause),
    redriveCount:
      d.redriveCount === undefined || d.redriveCount === null
        ? 0
        : integer(d.redriveCount, 'event.detail.redriveCount', 0, Number.MAX_SAFE_INTEGER),
  };
}
