import * as z from 'zod';
import { count, object, oneOf, runId, text } from './schema/fields.ts';
import { parseInput } from './schema/parse.ts';

// The event ReportFailure runs on: EventBridge's "Step Functions Execution Status Change", as
// Step Functions sends it for a Standard workflow's execution (the shape of
// https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html; dates in epoch ms).
// The rule in serverless.yml passes only the ends that are not a success; the local runtime
// builds the same event when a local execution ends so (src/local/failure-rule.ts).

export const EXECUTION_STATUS_CHANGE = 'Step Functions Execution Status Change';
export const FAILED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;
export type FailedStatus = (typeof FAILED_STATUSES)[number];

/** The whole event as Step Functions sends it (what the local runtime builds). */
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

const optionalText = z
  .string()
  .nullish()
  .transform((v) => (v ? v : undefined));

/** Another kind of event is refused on its kind alone: its other fields would only add noise. */
const StatusChangeKind = z.looseObject(
  {
    'detail-type': z.literal(EXECUTION_STATUS_CHANGE, {
      error: `must be "${EXECUTION_STATUS_CHANGE}" (is the EventBridge rule's pattern the one in serverless.yml?)`,
    }),
  },
  { error: 'must be an object' },
);

/** What ReportFailure reads from the event, and how. */
export const ExecutionStatusChangeSchema = object({
  detail: object({
    name: runId(),
    executionArn: text().regex(/^arn:[\w-]+:states:[^:]*:\d*:execution:/, {
      error: 'must be a Step Functions execution ARN',
    }),
    status: oneOf(FAILED_STATUSES),
    error: optionalText,
    cause: optionalText,
    redriveCount: count()
      .nullish()
      .transform((n) => n ?? 0),
  }),
}).transform(({ detail: d }) => ({
  runId: d.name,
  executionArn: d.executionArn,
  status: d.status,
  error: d.error,
  cause: d.cause,
  /** Which attempt ended: a report for an attempt that was redriven since is stale. */
  redriveCount: d.redriveCount,
}));

export type FailedExecution = z.output<typeof ExecutionStatusChangeSchema>;

export function parseExecutionStatusChange(event: unknown): FailedExecution {
  parseInput(StatusChangeKind, event, { name: 'event' });
  return parseInput(ExecutionStatusChangeSchema, event, { name: 'event' });
}
