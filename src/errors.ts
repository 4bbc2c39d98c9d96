// Named errors. Their `name` is what Step Functions sees as the error type (Lambda reports
// error.name as errorType), so the ASL retries TransientError and catches the rest.

export class PipelineError extends Error {
  override name = 'PipelineError';
}

/** The request itself is wrong (event field, CLI flag, configuration): fix the input. */
export class InputError extends PipelineError {
  override name = 'InputError';
}

/** The dataset or an object in the bucket is not what it must be: fix the data. */
export class DataError extends PipelineError {
  override name = 'DataError';
}

/** An object the step needs is missing. */
export class NotFoundError extends PipelineError {
  override name = 'NotFoundError';
}

/** Worth retrying: network hiccups, throttling, 5xx from a source or S3. */
export class TransientError extends PipelineError {
  override name = 'TransientError';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
