import { randomUUID } from 'node:crypto';
import { reportFailureHandler } from '../../functions/report-failure.ts';
import type { HistoryEvent, HistoryEventType } from '../aws/execution.ts';
import { errorMessage } from '../errors.ts';
import { EXECUTION_STATUS_CHANGE, type ExecutionStatusChange } from '../execution-status-event.ts';
import { logger } from '../log.ts';
import { withCaller } from '../storage/call-log.ts';
import {
  type EventLog,
  type ExecutionResult,
  LOCAL_STATE_MACHINE_ARN,
  lambdaContext,
  localExecutionArn,
} from './step-functions.ts';

// The local twin of the EventBridge rule in serverless.yml: when a local execution ends FAILED
// or ABORTED, the ReportFailure handler gets the event EventBridge would send, and reads the
// execution's history from the engine's events, recorded as GetExecutionHistory would list them.

export interface LocalHistory {
  record(event: EventLog): void;
  events(): HistoryEvent[];
  startedAt: number;
}

const ITERATION_DETAILS = {
  MapIterationStarted: 'mapIterationStartedEventDetails',
  MapIterationSucceeded: 'mapIterationSucceededEventDetails',
  MapIterationFailed: 'mapIterationFailedEventDetails',
} as const;

/** Records the engine's events as history events: the ones ReportFailure reads. */
export function localHistory(): LocalHistory {
  const events: HistoryEvent[] = [];
  const push = (timestamp: number, type: string, details: Partial<HistoryEvent>) =>
    events.push({
      id: events.length + 1,
      timestamp: new Date(timestamp),
      type: type as HistoryEventType,
      ...details,
    });
  const history: LocalHistory = {
    startedAt: Date.now(),
    events: () => [...events],
    record(e) {
      if (e.type === 'ExecutionStarted') {
        history.startedAt = e.timestamp;
        push(e.timestamp, 'ExecutionStarted', {});
      } else if (e.type === 'StateEntered') {
        push(e.timestamp, `${e.state.type}StateEntered`, {
          stateEnteredEventDetails: { name: e.state.name },
        });
      } else if (e.type === 'StateExited') {
        push(e.timestamp, `${e.state.type}StateExited`, { stateExitedEventDetails: { name: e.state.name } });
      } else if (e.type in ITERATION_DETAILS) {
        const it = e as Extract<EventLog, { type: keyof typeof ITERATION_DETAILS }>;
        push(it.timestamp, it.type, {
          [ITERATION_DETAILS[it.type]]: { name: it.parentState.name, index: it.index },
        });
      } else if (e.type === 'ExecutionFailed') {
        push(e.timestamp, 'ExecutionFailed', {
          executionFailedEventDetails: { error: e.Error, cause: String(e.Cause ?? '') },
        });
      } else if (e.type === 'ExecutionAborted') {
        push(e.timestamp, 'ExecutionAborted', { executionAbortedEventDetails: {} });
      } else if (e.type === 'ExecutionTimeout') {
        push(e.timestamp, 'ExecutionTimedOut', { executionTimedOutEventDetails: {} });
      }
    },
  };
  return history;
}

/** The event EventBridge sends when a Standard execution ends other than SUCCEEDED. */
export function statusChangeEvent(opts: {
  executionName: string;
  input: unknown;
  result: ExecutionResult;
  startedAt: number;
}): ExecutionStatusChange {
  const executionArn = localExecutionArn(opts.executionName);
  const [, , , region = '', account = ''] = executionArn.split(':');
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': EXECUTION_STATUS_CHANGE,
    source: 'aws.states',
    account,
    time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    region,
    resources: [executionArn],
    detail: {
      executionArn,
      stateMachineArn: LOCAL_STATE_MACHINE_ARN,
      name: opts.executionName,
      status: opts.result.status,
      startDate: opts.startedAt,
      stopDate: Date.now(),
      input: JSON.stringify(opts.input),
      inputDetails: { included: true },
      output: null,
      outputDetails: null,
      // As on AWS, only a failure carries its error: a stop says nothing of its own here.
      error: opts.result.status === 'FAILED' ? (opts.result.error ?? null) : null,
      cause: opts.result.status === 'FAILED' ? (opts.result.cause ?? null) : null,
      // A local resume starts the execution again rather than redriving it.
      redriveCount: 0,
      redriveDate: null,
    },
  };
}

/**
 * Runs ReportFailure as the rule would, for an execution that did not succeed. Its own failure
 * is logged, not thrown: on AWS it would not change how the run ended either.
 */
export async function reportLocalFailure(opts: {
  executionName: string;
  input: unknown;
  result: ExecutionResult;
  history: LocalHistory;
}): Promise<void> {
  if (opts.result.status === 'SUCCEEDED') return;
  const event = statusChangeEvent({ ...opts, startedAt: opts.history.startedAt });
  const handler = reportFailureHandler(async function* () {
    yield* opts.history.events();
  });
  try {
    // Its timeout in serverless.yml.
    await withCaller('ReportFailure', () => handler(event, lambdaContext('ReportFailure', 60_000)));
  } catch (err) {
    logger.warn(
      `ReportFailure failed, so reports/${opts.executionName}/failure.json is not written: ${errorMessage(err)}`,
    );
  }
}
