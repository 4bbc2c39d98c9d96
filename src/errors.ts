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

/** Why an upload could not be classified: the `error.code` of its prediction document. */
export type UploadErrorCode =
  | 'NotFound'
  | 'EmptyObject'
  | 'TooLarge'
  | 'NotAnImage'
  | 'UnsupportedFormat'
  | 'CorruptImage'
  | 'TooManyPixels'
  | 'NoChampion'
  | 'ModelUnavailable'
  | 'InternalError';

/**
 * An upload that cannot be classified. Upload classification writes it as an error document
 * where the prediction would be, and does not rethrow it: a retry would fail the same way.
 */
export class UploadRejectedError extends PipelineError {
  override name = 'UploadRejectedError';
  constructor(
    readonly code: UploadErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Socket errors that a retry may cure: a dropped or timed-out connection, a DNS hiccup. A
 * refused connection, an unknown host or a TLS failure fails the same way again, so those are
 * not retried anywhere.
 */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The system or undici error code of a network failure (fetch wraps it in `cause`). */
export function networkErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isTransientNetworkError(err: unknown): boolean {
  const code = networkErrorCode(err);
  return code !== undefined && TRANSIENT_NETWORK_CODES.has(code);
}

/**
 * For the pipeline's own services (the bucket's endpoint) a refused connection is an outage,
 * retried like a dropped one; a download source that refuses is misconfigured and is not.
 */
export function isTransientServiceError(err: unknown): boolean {
  return isTransientNetworkError(err) || networkErrorCode(err) === 'ECONNREFUSED';
}
