import type { HistoryEvent } from '../aws/execution.ts';
import type { FailedExecution, FailedStatus } from '../execution-status-event.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { FailureReport } from '../types.ts';

// ReportFailure: runs when an execution ends FAILED, TIMED_OUT or ABORTED (the EventBridge rule
// in serverless.yml; its local twin in src/local/failure-rule.ts) and writes failure.json. The
// state machine catches nothing, so a redrive reruns the state that failed; which state that
// was, the event does not say: the execution's history does. Lambda failures arrive with a JSON
// Cause ({errorType, errorMessage, trace}); a failed batch:submitJob.sync with the Batch job's
// description ({JobName, Status, StatusReason, Attempts, …}); the local engine passes the message
// itself.

/** The parts of a Batch job description (DescribeJobs, as Step Functions passes it) read here. */
interface BatchJobCause {
  JobName?: string;
  Status?: string;
  StatusReason?: string;
  Attempts?: {
    StatusReason?: string;
    Container?: { ExitCode?: number; Reason?: string; LogStreamName?: string };
  }[];
}

/** Why a Batch job failed: its status reason (a queue's RUNNABLE cancel reason says it all), and
 * what its last attempt's container said, with the log stream to read. */
function batchJobCause(job: BatchJobCause): string {
  const last = job.Attempts?.at(-1);
  const container = last?.Container;
  const details = [
    last?.StatusReason && last.StatusReason !== job.StatusReason ? last.StatusReason : undefined,
    container?.Reason,
    container?.ExitCode !== undefined ? `exit code ${container.ExitCode}` : undefined,
    container?.LogStreamName ? `log stream ${container.LogStreamName}` : undefined,
  ].filter((d): d is string => Boolean(d));
  const attempts = job.Attempts?.length ? `; attempt ${job.Attempts.length}: ${details.join(', ')}` : '';
  return `Batch job ${job.JobName ?? '(unnamed)'} ${job.Status ?? 'FAILED'}: ${job.StatusReason}${attempts}`;
}

export function readableCause(cause: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(cause);
  } catch {
    return cause; // not JSON: already the message
  }
  if (typeof parsed !== 'object' || parsed === null) return cause;
  const p = parsed as { errorMessage?: unknown; StatusReason?: unknown };
  if (typeof p.errorMessage === 'string') return p.errorMessage;
  if (typeof p.StatusReason === 'string') return batchJobCause(parsed as BatchJobCause);
  return cause;
}

/** What the execution's history says about how its last attempt ended. */
export interface HistoryReading {
  /** The top-level state it was in: a Map, not the state inside its iteration. */
  state?: string;
  /** ExecutionRedriven events: more than the event's redriveCount means a newer attempt began. */
  redrives: number;
  error?: string;
  cause?: string;
}

const MAP_ITERATION_END = new Set(['MapIterationSucceeded', 'MapIterationFailed', 'MapIterationAborted']);

export async function readHistory(events: AsyncIterable<HistoryEvent>): Promise<HistoryReading> {
  const reading: HistoryReading = { redrives: 0 };
  // Map iterations running: states entered meanwhile are inside a Map, whose iteration events name it.
  let openIterations = 0;
  for await (const e of events) {
    const type = e.type ?? '';
    if (type === 'ExecutionRedriven') {
      reading.redrives++;
      openIterations = 0;
    } else if (type === 'MapIterationStarted') {
      openIterations++;
      reading.state = e.mapIterationStartedEventDetails?.name ?? reading.state;
    } else if (MAP_ITERATION_END.has(type)) {
      openIterations = Math.max(0, openIterations - 1);
      const d =
        e.mapIterationSucceededEventDetails ??
        e.mapIterationFailedEventDetails ??
        e.mapIterationAbortedEventDetails;
      reading.state = d?.name ?? reading.state;
    } else if (type.endsWith('StateEntered') && openIterations === 0) {
      reading.state = e.stateEnteredEventDetails?.name ?? reading.state;
    } else {
      const end =
        e.executionFailedEventDetails ?? e.executionTimedOutEventDetails ?? e.executionAbortedEventDetails;
      if (end) Object.assign(reading, { error: end.error, cause: end.cause });
    }
  }
  return reading;
}

/** What an end without an error of its own is reported as (the CLI uses the same words). */
const ENDS: Record<FailedStatus, { error: string; cause: string }> = {
  FAILED: { error: 'States.Runtime', cause: 'the execution failed' },
  TIMED_OUT: { error: 'States.Timeout', cause: 'the execution timed out' },
  ABORTED: { error: 'Aborted', cause: 'the execution was stopped' },
};

export type ReportFailureResult =
  | (FailureReport & { failureKey: string })
  | { runId: string; superseded: true; failureKey?: undefined };

export async function reportFailure(
  store: ObjectStore,
  failed: FailedExecution,
  history: AsyncIterable<HistoryEvent>,
): Promise<ReportFailureResult> {
  const reading = await readHistory(history);
  // A late event (EventBridge delivers best effort, not in order) for an attempt that has been
  // redriven since: the run is running again, and its report would say it failed.
  if (reading.redrives > failed.redriveCount) return { runId: failed.runId, superseded: true };
  const end = ENDS[failed.status];
  const report: FailureReport = {
    runId: failed.runId,
    state: reading.state ?? 'unknown',
    error: failed.error ?? reading.error ?? end.error,
    cause: readableCause(failed.cause ?? reading.cause ?? end.cause),
    failedAt: new Date().toISOString(),
  };
  const failureKey = keys.failure(failed.runId);
  await store.putJson(failureKey, report);
  return { ...report, failureKey };
}
