import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';
import type { S3Client } from '@aws-sdk/client-s3';

// A record of every S3 API call, tagged with the function or job that made it, for the IAM
// simulation test (test/iam-simulation.test.ts) to check each one against that function's
// role in the packaged template. Off unless DOGBREED_AWS_CALL_LOG names a JSONL file to append
// to. The local runtime says who is calling: withCaller() around an in-process handler, and
// DOGBREED_AWS_CALLER in the environment of a child process (the training job).

export const CALL_LOG_ENV = 'DOGBREED_AWS_CALL_LOG';
export const CALLER_ENV = 'DOGBREED_AWS_CALLER';

/** Read once: the file every client of this process appends to. */
const logFile = process.env[CALL_LOG_ENV] || undefined;
const processCaller = process.env[CALLER_ENV] || undefined;

/** One S3 API call as the SDK made it: what the IAM request is derived from. */
export interface RecordedCall {
  /** Lambda function or Batch job name (the Task state's name); absent: the operator or a test. */
  caller?: string;
  service: 's3';
  /** The SDK command without "Command": GetObject, ListObjectsV2, UploadPart… */
  command: string;
  bucket: string;
  key?: string;
  prefix?: string;
  /** CopyObject's source, "bucket/key" URL-encoded as sent. */
  copySource?: string;
  /** Whether the request carries object tags (x-amz-tagging). */
  tagging?: boolean;
  /**
   * The key was not there (404). On AWS, S3 answers 403 instead unless the caller may list the
   * key's prefix, and the store then lists to tell "missing" from "forbidden".
   */
  missing?: boolean;
}

const current = new AsyncLocalStorage<string>();

/** Runs `fn` with every S3 call it makes recorded as made by `caller`. */
export function withCaller<T>(caller: string, fn: () => Promise<T>): Promise<T> {
  return logFile ? current.run(caller, fn) : fn();
}

/**
 * Runs `fn` as the local runtime itself, whose calls are no function's: a local run's journal,
 * which on AWS is the execution history and not written by any role.
 */
export function asLocalRuntime<T>(fn: () => Promise<T>): Promise<T> {
  return logFile ? current.exit(fn) : fn();
}

/** The environment a child process needs to record its calls as this caller's ({} when off). */
export function callLogEnv(): Record<string, string> {
  const caller = current.getStore() ?? processCaller;
  return logFile ? { [CALL_LOG_ENV]: logFile, ...(caller ? { [CALLER_ENV]: caller } : {}) } : {};
}

type Input = {
  Bucket?: string;
  Key?: string;
  Prefix?: string;
  CopySource?: string;
  Tagging?: string;
};

/** Adds the recording middleware to `client` when recording is on; otherwise leaves it alone. */
export function recordCalls(client: S3Client): S3Client {
  if (!logFile) return client;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as Input;
      const caller = current.getStore() ?? processCaller;
      const call: RecordedCall = {
        ...(caller ? { caller } : {}),
        service: 's3',
        command: (context.commandName ?? 'Unknown').replace(/Command$/, ''),
        bucket: input.Bucket ?? '',
        ...(input.Key !== undefined ? { key: input.Key } : {}),
        ...(input.Prefix !== undefined ? { prefix: input.Prefix } : {}),
        ...(input.CopySource ? { copySource: input.CopySource } : {}),
        ...(input.Tagging ? { tagging: true } : {}),
      };
      // Synchronous, one line per write: lines from this process and the job's never interleave.
      const write = (missing: boolean) =>
        appendFileSync(logFile, `${JSON.stringify(missing ? { ...call, missing } : call)}\n`);
      try {
        const out = await next(args);
        write(false);
        return out;
      } catch (err) {
        write((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404);
        throw err;
      }
    },
    { step: 'initialize', name: 'dogbreedCallLog' },
  );
  return client;
}
