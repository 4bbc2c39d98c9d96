import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { logger } from '../../src/log.ts';

// Every Task handler has the same shape: parse the event, call the core, return keys.
// Errors keep their class name, which Step Functions reads as the error type for Retry/Catch.
// Object results get `seconds`, the handler's own time, which WriteReport reports per state.

export type StepHandler<O> = (event: unknown, context: Context) => Promise<O>;

export function stepHandler<I, O>(
  state: string,
  parse: (event: unknown) => I,
  run: (input: I) => Promise<O>,
): StepHandler<O> {
  return middy<unknown, O>()
    .use({
      onError: (request) => {
        const err = request.error;
        logger.error(`${state} failed: ${err?.message}`, { state, error: err?.name });
      },
    })
    .handler(async (event: unknown) => {
      const started = Date.now();
      const result = await run(parse(event));
      const seconds = (Date.now() - started) / 1000;
      return result && typeof result === 'object' && !Array.isArray(result) ? { ...result, seconds } : result;
    }) as unknown as StepHandler<O>;
}
