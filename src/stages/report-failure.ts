import type { FailureEvent } from '../events.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { FailureReport } from '../types.ts';
import { keys } from './keys.ts';

// ReportFailure: the Catch target of every state. Lambda failures arrive with a JSON Cause
// ({errorType, errorMessage, trace}); the local engine passes the message itself.

function readableCause(cause: string): string {
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // not JSON: already the message
  }
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
