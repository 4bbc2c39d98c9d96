import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  type HistoryEventType,
  RedriveExecutionCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { InputError } from '../errors.ts';
import type { EventLog } from '../local/step-functions.ts';
import { SDK_RETRY, withRetryRule } from './sdk-retry.ts';

// A run on a deployed stage: StartExecution, then the execution history polled and turned into
// the same events the local engine emits, so the same progress display follows it.

export interface FollowResult {
  status: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  output?: unknown;
  error?: string;
  cause?: string;
}

export type { HistoryEvent, HistoryEventType, SFNClient };

/**
 * A Step Functions client (in the environment's region unless given); the SDK retries its calls,
 * throttled polling too: see sdk-retry.ts.
 */
export function sfnClient(region?: string): SFNClient {
  return withRetryRule(new SFNClient({ region, ...SDK_RETRY }));
}

export async function startExecution(
  sfn: SFNClient,
  stateMachineArn: string,
  runId: string,
  input: unknown,
): Promise<string> {
  const out = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, name: runId, input: JSON.stringify(input) }),
  );
  if (!out.executionArn) throw new Error('StartExecution returned no execution ARN');
  return out.executionArn;
}

/** An execution's ARN: executions are named by their run id. */
export function executionArnOf(stateMachineArn: string, runId: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${runId}`;
}

/** Continues a failed, timed-out or aborted execution from where it stopped. */
export async function redriveExecution(sfn: SFNClient, executionArn: string): Promise<void> {
  try {
    await sfn.send(new RedriveExecutionCommand({ executionArn }));
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'ExecutionNotRedrivable' || name === 'ExecutionDoesNotExist') {
      throw new InputError(
        `cannot resume ${executionArn}: ${(err as Error).message} (only a failed, timed-out or aborted execution of the last 14 days can be redriven; \`dogbreed runs --stage …\` lists them)`,
      );
    }
    throw err;
  }
}

const STATE_TYPES: Record<string, string> = {
  Task: 'Task',
  Map: 'Map',
  Pass: 'Pass',
  Choice: 'Choice',
  Succeed: 'Succeed',
  Fail: 'Fail',
  Parallel: 'Parallel',
  Wait: 'Wait',
};

const parse = (text: string | undefined): unknown => {
  try {
    return text === undefined ? null : JSON.parse(text);
  } catch {
    return text;
  }
};

/** Turns history events into engine events; states inside a running Map count as iteration states. */
export class HistoryTranslator {
  private readonly mapInputs = new Map<string, unknown>();

  translate(e: HistoryEvent): EventLog | undefined {
    const timestamp = e.timestamp ? e.timestamp.getTime() : Date.now();
    const m = /^(Task|Map|Pass|Choice|Succeed|Fail|Parallel|Wait)State(Entered|Exited)$/.exec(e.type ?? '');
    const inMap = this.mapInputs.size > 0;
    if (m) {
      const type = STATE_TYPES[m[1]!]!;
      if (m[2] === 'Entered') {
        const d = e.stateEnteredEventDetails;
        const input = parse(d?.input);
        const event = {
          type: 'StateEntered',
          timestamp,
          state: { name: d?.name ?? '', type, input },
          ...(inMap ? { index: 0 } : {}),
        };
        if (type === 'Map') this.mapInputs.set(d?.name ?? '', input);
        return event as EventLog;
      }
      const d = e.stateExitedEventDetails;
      if (type === 'Map') this.mapInputs.delete(d?.name ?? '');
      const still = this.mapInputs.size > 0 && type !== 'Map';
      return {
        type: 'StateExited',
        timestamp,
        state: { name: d?.name ?? '', type, input: null, output: parse(d?.output) },
        ...(still ? { index: 0 } : {}),
      } as EventLog;
    }
    if (e.type === 'MapIterationSucceeded' || e.type === 'MapIterationFailed') {
      const d =
        e.type === 'MapIterationSucceeded'
          ? e.mapIterationSucceededEventDetails
          : e.mapIterationFailedEventDetails;
      const name = d?.name ?? '';
      return {
        type: e.type,
        timestamp,
        index: d?.index ?? 0,
        parentState: { name, type: 'Map', input: this.mapInputs.get(name) ?? null },
        ...(e.type === 'MapIterationFailed'
          ? { Error: 'MapIterationFailed', Cause: 'see the execution history' }
          : {}),
      } as EventLog;
    }
    return undefined;
  }
}

/** An execution's whole history, oldest first, page by page. */
export async function* executionHistory(sfn: SFNClient, executionArn: string): AsyncGenerator<HistoryEvent> {
  let token: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, nextToken: token, maxResults: 500 }),
    );
    yield* page.events ?? [];
    token = page.nextToken;
  } while (token);
}

/** The id of the execution's last ExecutionRedriven event: earlier events are the failed attempts. */
async function lastRedriveEventId(sfn: SFNClient, executionArn: string): Promise<number> {
  let last = 0;
  for await (const e of executionHistory(sfn, executionArn))
    if (e.type === 'ExecutionRedriven') last = e.id ?? last;
  return last;
}

/** Polls the history until the execution ends; every new event goes to `onEvent`. */
export async function followExecution(
  sfn: SFNClient,
  executionArn: string,
  opts: {
    onEvent?: (e: EventLog) => void;
    pollMs?: number;
    signal?: AbortSignal;
    /** A redriven execution: follow only what happened after its last redrive. */
    sinceRedrive?: boolean;
  } = {},
): Promise<FollowResult> {
  const translator = new HistoryTranslator();
  let lastId = opts.sinceRedrive ? await lastRedriveEventId(sfn, executionArn) : 0;
  for (;;) {
    let token: string | undefined;
    do {
      const page = await sfn.send(
        new GetExecutionHistoryCommand({ executionArn, nextToken: token, maxResults: 500 }),
      );
      for (const e of page.events ?? []) {
        if ((e.id ?? 0) <= lastId) continue;
        lastId = e.id ?? lastId;
        const event = translator.translate(e);
        if (event) opts.onEvent?.(event);
        if (e.type === 'ExecutionSucceeded') {
          return { status: 'SUCCEEDED', output: parse(e.executionSucceededEventDetails?.output) };
        }
        if (e.type === 'ExecutionFailed') {
          return {
            status: 'FAILED',
            error: e.executionFailedEventDetails?.error,
            cause: e.executionFailedEventDetails?.cause,
          };
        }
        if (e.type === 'ExecutionTimedOut')
          return { status: 'TIMED_OUT', error: 'States.Timeout', cause: 'the execution timed out' };
        if (e.type === 'ExecutionAborted')
          return { status: 'ABORTED', error: 'Aborted', cause: 'the execution was stopped' };
      }
      token = page.nextToken;
    } while (token);
    if (opts.signal?.aborted) {
      const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
      return {
        status: 'ABORTED',
        error: 'Detached',
        cause: `stopped following; the execution is ${d.status} at ${executionArn}`,
      };
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 2000));
  }
}
