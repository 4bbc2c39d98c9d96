import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context, S3Event, S3EventRecord } from 'aws-lambda';
import { handler } from '../../functions/classify-upload.ts';
import { errorMessage } from '../errors.ts';
import { logger } from '../log.ts';
import { isUploadImageKey } from '../stages/classify-upload.ts';
import { withCaller } from '../storage/call-log.ts';
import { useLocalS3 } from './pipeline.ts';
import type { LocalS3 } from './s3-server.ts';

// The embedded default's S3 → Lambda notification: s3rver's object-created events under
// uploads/ invoke the classify-upload handler in-process, one record per event as S3 sends
// them, one invocation at a time per key (a re-upload waits for the previous one).

export interface UploadTrigger {
  /** Resolves when no invocation is running or queued. */
  idle(): Promise<void>;
  /** Stops listening and restores the environment; queued invocations are dropped. */
  detach(): void;
}

/** Lambda retries a failed asynchronous invocation twice; locally the waits are short. */
const RETRY_DELAYS_MS = [250, 1000];

/**
 * S3 puts keys in notifications form-encoded like Java's URLEncoder (space → `+`, only
 * `A-Za-z0-9._-*` kept) but leaves `/` alone; s3rver sends them decoded.
 */
export function encodeEventKey(key: string): string {
  return key
    .split('/')
    .map((part) =>
      encodeURIComponent(part)
        .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
        .replaceAll('%20', '+'),
    )
    .join('/');
}

function lambdaContext(): Context {
  const deadline = Date.now() + 900_000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'dogbreed-local-ClassifyUpload',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:dogbreed-local-ClassifyUpload',
    memoryLimitInMB: '2048',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/dogbreed-local-ClassifyUpload',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Points the handler's storage at `s3` (DOGBREED_BUCKET/DOGBREED_S3_ENDPOINT) until detach(). */
export function attachUploadTrigger(s3: LocalS3): UploadTrigger {
  const restoreEnv = useLocalS3(s3.endpoint, s3.bucket);
  const queues = new Map<string, Promise<void>>();
  let attached = true;

  const invoke = async (record: S3EventRecord) => {
    const key = record.s3.object.key;
    for (let attempt = 0; attached; attempt++) {
      try {
        // Serialised, as Lambda receives it: no shared objects with the emitter.
        const event = JSON.parse(JSON.stringify({ Records: [record] })) as S3Event;
        await withCaller('ClassifyUpload', () => handler(event, lambdaContext()));
        return;
      } catch (err) {
        const delay = RETRY_DELAYS_MS[attempt];
        logger.error(`upload trigger: ${key}: ${errorMessage(err)}${delay ? ', retrying' : ', giving up'}`);
        if (delay === undefined) return;
        await sleep(delay);
      }
    }
  };

  const onEvent = (event: { Records: S3EventRecord[] }) => {
    for (const record of event.Records) {
      const key = record.s3.object.key;
      if (!record.eventName.startsWith('ObjectCreated:') || !isUploadImageKey(key)) continue;
      const encoded = {
        ...record,
        s3: { ...record.s3, object: { ...record.s3.object, key: encodeEventKey(key) } },
      };
      const next = (queues.get(key) ?? Promise.resolve()).then(() =>
        attached ? invoke(encoded) : undefined,
      );
      queues.set(key, next);
      void next.finally(() => {
        if (queues.get(key) === next) queues.delete(key);
      });
    }
  };
  s3.server.on('event', onEvent);

  return {
    async idle() {
      while (queues.size > 0) await Promise.all(queues.values());
    },
    detach() {
      if (!attached) return;
      attached = false;
      s3.server.off('event', onEvent);
      restoreEnv();
    },
  };
}
