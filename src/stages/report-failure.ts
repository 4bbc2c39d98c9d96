import type { FailureEvent } from '../events.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { FailureReport } from '../types.ts';

// ReportFailure: the Catch target of every state. Lambda failures arrive with a JSON Cause
// ({errorType, errorMessage, trace}); a failed batch:submitJob.sync with the Batch job's
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

export async function reportFailure(
  store: ObjectStore,
  event: FailureEvent,
): Promise<FailureReport & { failureKey: string }> {
  const report: FailureReport = {
    runId: event.runId,
    state: event.state,
    error: event.error.Error,
    cause: readableCause(event.error.Cause),
    failedAt: new Date().toISOString(),
  };
  const failureKey = keys.failure(event.runId);
  await store.putJson(failureKey, report);
  return { ...report, failureKey };
}
