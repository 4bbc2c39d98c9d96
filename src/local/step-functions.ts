import './polyfills.ts';
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { ExecutionAbortedError, StateMachine } from 'aws-local-stepfunctions';
import { executionArnOf } from '../aws/execution.ts';
import { errorMessage } from '../errors.ts';
import { withCaller } from '../storage/call-log.ts';

// Runs the deployed ASL file with aws-local-stepfunctions, each Task state served by the same
// handler module its Lambda exports. Payloads are JSON-serialised both ways, as Lambda does,
// and every state's input and output is held to Step Functions' 256 KiB limit.

/** The engine's event type (the package does not export it by name). */
export type EventLog =
  ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

export const PAYLOAD_LIMIT_BYTES = 256 * 1024;

export type LocalHandler = (event: unknown, context: Context) => Promise<unknown>;

export interface StateTiming {
  state: string;
  type: string;
  /** Runs inside a Map iteration: timed from its first start to its last end. */
  inMap: boolean;
  startedAt: number;
  endedAt?: number;
  status: 'running' | 'succeeded' | 'failed';
  /** Map iterations seen and finished. */
  iterations?: { total: number; done: number; failed: number };
}

export interface ExecutionResult {
  status: 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  output?: unknown;
  error?: string;
  cause?: string;
  timings: StateTiming[];
  /** Largest serialised state input or output seen, in bytes. */
  maxPayloadBytes: number;
}

export interface RunOptions {
  definition: Record<string, unknown>;
  executionName: string;
  input: unknown;
  handlers: Record<string, LocalHandler>;
  onEvent?: (event: EventLog) => void;
  signal?: AbortSignal;
}

/** The local state machine's ARN, and its executions', named as on AWS. */
export const LOCAL_STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:000000000000:stateMachine:dogbreed-local';
export const localExecutionArn = (name: string) => executionArnOf(LOCAL_STATE_MACHINE_ARN, name);

export function lambdaContext(name: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `dogbreed-local-${name}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:dogbreed-local-${name}`,
    memoryLimitInMB: '2048',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/dogbreed-local-${name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Task states by name, with their TimeoutSeconds, from the definition and its Map processors. */
function taskTimeouts(def: Record<string, unknown>, out = new Map<string, number>()): Map<string, number> {
  const states = (def.States ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Task') out.set(name, Number(state.TimeoutSeconds ?? 60) * 1000);
    const inner = (state.ItemProcessor ?? state.Iterator) as Record<string, unknown> | undefined;
    if (inner) taskTimeouts(inner, out);
  }
  return out;
}

export async function runStateMachine(opts: RunOptions): Promise<ExecutionResult> {
  const timeouts = taskTimeouts(opts.definition);
  for (const name of timeouts.keys()) {
    if (!opts.handlers[name]) throw new Error(`no local handler for Task state ${name}`);
  }
  const taskResourceLocalHandlers = Object.fromEntries(
    [...timeouts].map(([name, timeoutMs]) => {
      const handler = opts.handlers[name]!;
      const invoke = async (input: unknown) => {
        const event = JSON.parse(JSON.stringify(input)) as unknown;
        // Its S3 calls are the function's (or the job's), as IAM will see them on AWS.
        const result = await withCaller(name, () => handler(event, lambdaContext(name, timeoutMs)));
        return JSON.parse(JSON.stringify(result ?? null));
      };
      return [name, invoke];
    }),
  );

  // Not validated again here: test/state-machine-definition.test.ts checks this same definition
  // (after substitution) with asl-validator, and compiling its schemas took 0.3 s of every run.
  const machine = new StateMachine(opts.definition as never, { validationOptions: { noValidate: true } });
  const execution = machine.run(opts.input as never, {
    overrides: { taskResourceLocalHandlers },
    context: {
      Execution: {
        Id: localExecutionArn(opts.executionName),
        Name: opts.executionName,
        Input: opts.input as never,
        StartTime: new Date().toISOString(),
      },
    },
  });
  const onAbort = () => execution.abort();
  opts.signal?.addEventListener('abort', onAbort);

  const timings = new Map<string, StateTiming>();
  let maxPayloadBytes = 0;
  let oversize: string | undefined;
  const measure = (state: string, what: string, value: unknown) => {
    const bytes = Buffer.byteLength(JSON.stringify(value ?? null));
    maxPayloadBytes = Math.max(maxPayloadBytes, bytes);
    if (bytes > PAYLOAD_LIMIT_BYTES && !oversize) {
      oversize = `${state} ${what} is ${bytes} bytes, over Step Functions' 256 KiB payload limit`;
      execution.abort();
    }
  };
  const watch = (async () => {
    for await (const event of execution.eventLogs) {
      if (event.type === 'StateEntered' || event.type === 'StateExited' || event.type === 'StateFailed') {
        const { name } = event.state;
        if (event.type === 'StateEntered') {
          measure(name, 'input', event.state.input);
          // Map iterations re-enter the inner states: time each state from its first entry.
          if (!timings.has(name)) {
            timings.set(name, {
              state: name,
              type: event.state.type,
              inMap: event.index !== undefined,
              startedAt: event.timestamp,
              status: 'running',
            });
          }
        } else {
          const t = timings.get(name);
          if (t) {
            t.endedAt = event.timestamp;
            t.status = event.type === 'StateFailed' ? 'failed' : 'succeeded';
          }
          if (event.type === 'StateExited') measure(name, 'output', event.state.output);
        }
      } else if (
        event.type === 'MapIterationStarted' ||
        event.type === 'MapIterationSucceeded' ||
        event.type === 'MapIterationFailed'
      ) {
        const parent = timings.get(event.parentState.name);
        if (parent) {
          parent.iterations ??= { total: 0, done: 0, failed: 0 };
          if (event.type === 'MapIterationStarted') parent.iterations.total++;
          if (event.type === 'MapIterationSucceeded') parent.iterations.done++;
          if (event.type === 'MapIterationFailed') parent.iterations.failed++;
        }
      }
      opts.onEvent?.(event);
    }
  })();

  try {
    const output = await execution.result;
    return { status: 'SUCCEEDED', output, timings: [...timings.values()], maxPayloadBytes };
  } catch (err) {
    await watch.catch(() => undefined);
    if (err instanceof ExecutionAbortedError) {
      return {
        status: oversize ? 'FAILED' : 'ABORTED',
        error: oversize ? 'States.DataLimitExceeded' : 'Aborted',
        cause: oversize ?? 'the execution was stopped',
        timings: [...timings.values()],
        maxPayloadBytes,
      };
    }
    const cause = (err as { cause?: unknown }).cause as { name?: string; message?: string } | undefined;
    return {
      status: 'FAILED',
      error: cause?.name ?? 'States.Runtime',
      cause: cause?.message ?? errorMessage(err),
      timings: [...timings.values()],
      maxPayloadBytes,
    };
  } finally {
    await watch.catch(() => undefined);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
