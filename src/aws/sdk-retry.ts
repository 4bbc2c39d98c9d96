import type { S3Client } from '@aws-sdk/client-s3';
import { errorMessage, InputError, isTransientServiceError, networkErrorCode } from '../errors.ts';

// How every AWS SDK client of this project retries: the SDK's own retry (standard mode: backoff
// with jitter, throttling and 5xx retried, other 4xx not) is the one retry layer for an SDK
// call; nothing wraps it in a loop of its own. Clients are created with SDK_RETRY and passed
// through withRetryRule, so the SDK also leaves alone what src/errors.ts says a retry cannot
// cure (an unknown host, an unreachable network, a TLS failure), which it would retry.

export const SDK_RETRY = { maxAttempts: 5, retryMode: 'standard' } as const;

type Stack = Pick<S3Client['middlewareStack'], 'add'>;

/** Adds the rule to `client`: a permanent connection failure fails its first attempt. */
export function withRetryRule<C extends { middlewareStack: unknown }>(client: C): C {
  (client.middlewareStack as Stack).add(
    // Below the retry middleware, so it sees each attempt's failure before the SDK classifies it.
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        const code = networkErrorCode(err);
        if (code === undefined || isTransientServiceError(err) || (err as Error).name === 'AbortError')
          throw err;
        // A new error without the code or a cause: the SDK classifies it as not retryable.
        throw new InputError(
          `${errorMessage(err)} (${code}): not retried, it would fail the same way; check the endpoint, the region and the network`,
        );
      }
    },
    { step: 'deserialize', name: 'dogbreedRetryRule' },
  );
  return client;
}
