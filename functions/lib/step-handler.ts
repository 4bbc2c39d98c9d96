import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { logger } from '../../src/log.ts';
import { appendLogKeys, type Figure, lambdaTelemetry, record } from './telemetry.ts';

// Every Task handler has the same shape: parse the event, call the core, return keys.
// Errors keep their class name, which Step Functions reads as the error type for Retry.
// Object results get `seconds`, the handler's own time, which WriteReport reports per state.
// On Lambda, log lines carry the run id, and `measure` turns the core's result into metrics.

export type StepHandler<O> = (event: unknown, context: Context) => Promise<O>;

export function stepHandler<I extends { runId: string }, O>(
  state: string,
  parse: (event: unknown) => I,
  run: (input: I) => Promise<O>,
  measure?: (result: O) => Figure[],
): StepHandler<O> {
  // Telemetry first in, last out: a failure is logged while the invocation's keys are still set.
  return middy<unknown, O>()
    .use(lambdaTelemetry({ metrics: measure !== undefined }))
    .use({
      onError: (request) => {
        const err = request.error;
        logger.error(`${state} failed: ${err?.message}`, { state, error: err?.name });
      },
    })
    .handler(async (event: unknown) => {
      const started = Date.now();
      const input = parse(event);
      appendLogKeys({ runId: input.runId });
      const result = await run(input);
      if (measure) record(state, measure(result));
      const seconds = (Date.now() - started) / 1000;
      return result && typeof result === 'object' && !Array.isArray(result) ? { ...result, seconds } : result;
    }) as unknown as StepHandler<O>;
}
