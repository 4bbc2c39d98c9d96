import { TransientError } from '../errors.ts';

export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs?: number;
  /** Told before each new attempt, e.g. to log it. */
  onRetry?: (attempt: number, err: unknown, delayMs: number) => void;
  isRetryable?: (err: unknown) => boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Retries `fn` with exponential backoff (full jitter) while the error is retryable. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const retryable = opts.isRetryable ?? ((e: unknown) => e instanceof TransientError);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= opts.attempts || !retryable(err)) throw err;
      const cap = Math.min(opts.maxDelayMs ?? 30_000, opts.baseDelayMs * 2 ** (attempt - 1));
      const delay = Math.round(cap / 2 + (Math.random() * cap) / 2);
      opts.onRetry?.(attempt, err, delay);
      await sleep(delay);
    }
  }
}
