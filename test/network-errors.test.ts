import { describe, expect, it } from 'vitest';
import { isTransientNetworkError, isTransientServiceError, networkErrorCode } from '../src/errors.ts';

// Which socket failures are worth a retry: one rule for S3 calls, downloads and uploads.

const fetchFailure = (code: string) => Object.assign(new TypeError('fetch failed'), { cause: { code } });
const socketError = (code: string) => Object.assign(new Error(`connect ${code}`), { code });

describe('network error classification', () => {
  it('reads the code from the error or from the cause fetch wraps it in', () => {
    expect(networkErrorCode(socketError('ECONNRESET'))).toBe('ECONNRESET');
    expect(networkErrorCode(fetchFailure('ENOTFOUND'))).toBe('ENOTFOUND');
    expect(networkErrorCode(new Error('plain'))).toBeUndefined();
    expect(networkErrorCode(undefined)).toBeUndefined();
  });

  it('retries dropped and timed-out connections and DNS hiccups', () => {
    for (const code of ['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET']) {
      expect(isTransientNetworkError(socketError(code)), code).toBe(true);
      expect(isTransientNetworkError(fetchFailure(code)), code).toBe(true);
    }
  });

  it('does not retry what fails the same way again: refused, unknown host, TLS', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
      expect(isTransientNetworkError(fetchFailure(code)), code).toBe(false);
    }
    expect(isTransientNetworkError(new Error('no code'))).toBe(false);
  });

  it('counts a refused connection to the pipeline’s own S3 endpoint as an outage, worth a retry', () => {
    expect(isTransientServiceError(socketError('ECONNREFUSED'))).toBe(true);
    expect(isTransientServiceError(socketError('ECONNRESET'))).toBe(true);
    expect(isTransientServiceError(fetchFailure('ENOTFOUND'))).toBe(false);
  });
});
