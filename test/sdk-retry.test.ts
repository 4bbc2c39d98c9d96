import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { followExecution, sfnClient, startExecution } from '../src/aws/execution.ts';
import { SDK_RETRY } from '../src/aws/sdk-retry.ts';
import { InputError } from '../src/errors.ts';
import { createS3Client } from '../src/storage/s3-store.ts';

// One retry layer per AWS call: the SDK's own. These clients are the ones the CLI and the store
// create, with only their HTTP handler replaced, so the SDK's retry middleware really runs and
// every request it makes is counted here.

type Reply = { status: number; body: unknown; type?: string } | { code: string };

/** Serves `replies` in order (the last one again when they run out), counting the requests. */
function httpReplies(replies: Reply[]) {
  const served = { requests: 0 };
  const handler = {
    async handle() {
      const r = replies[Math.min(served.requests++, replies.length - 1)]!;
      if ('code' in r)
        throw Object.assign(new Error(`connect ${r.code} states.example.invalid`), { code: r.code });
      return {
        response: {
          statusCode: r.status,
          headers: {
            'content-type': 'application/x-amz-json-1.0',
            ...(r.type ? { 'x-amzn-errortype': r.type } : {}),
          },
          body: Readable.from([Buffer.from(JSON.stringify(r.body))]),
        },
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  };
  return { served, handler };
}

const clients: { destroy(): void }[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
});

function sfnWith(replies: Reply[]) {
  const { served, handler } = httpReplies(replies);
  const client = sfnClient('us-east-1');
  Object.assign(client.config, {
    requestHandler: handler,
    credentials: async () => ({ accessKeyId: 'test', secretAccessKey: 'test' }),
  });
  clients.push(client);
  return { client, served };
}

const succeeded = {
  events: [
    {
      id: 1,
      timestamp: 1_764_000_000,
      type: 'ExecutionSucceeded',
      executionSucceededEventDetails: { output: '{"ok":1}' },
    },
  ],
};
const throttled = { status: 400, type: 'ThrottlingException', body: { message: 'Rate exceeded' } };

describe('AWS SDK clients: the SDK retry is the one layer', () => {
  it('every client is configured once: standard mode, SDK_RETRY.maxAttempts', async () => {
    const sfn = sfnClient('us-east-1');
    const s3 = createS3Client({ bucket: 'b' });
    clients.push(sfn, s3);
    for (const c of [sfn.config, s3.config]) {
      expect(await c.maxAttempts()).toBe(SDK_RETRY.maxAttempts);
      expect(((await c.retryStrategy()) as { mode?: string }).mode).toBe('standard');
    }
  });

  it('a throttled history call is retried by the SDK: two requests, and the follow goes on', async () => {
    const { client, served } = sfnWith([throttled, { status: 200, body: succeeded }]);
    const r = await followExecution(client, 'arn:aws:states:us-east-1:1:execution:sm:x', { pollMs: 1 });
    expect(r).toEqual({ status: 'SUCCEEDED', output: { ok: 1 } });
    expect(served.requests).toBe(2);
  });

  it('a call failing throughout (5xx) is tried SDK_RETRY.maxAttempts times in all, not once per layer', async () => {
    const { client, served } = sfnWith([
      { status: 503, type: 'ServiceUnavailable', body: { message: 'down' } },
    ]);
    await expect(
      startExecution(client, 'arn:aws:states:us-east-1:1:stateMachine:sm', 'r1', {}),
    ).rejects.toThrow(/down/);
    expect(served.requests).toBe(SDK_RETRY.maxAttempts);
  });

  it('a 4xx is not retried', async () => {
    const { client, served } = sfnWith([
      { status: 400, type: 'ExecutionAlreadyExists', body: { message: 'Execution already exists' } },
    ]);
    await expect(
      startExecution(client, 'arn:aws:states:us-east-1:1:stateMachine:sm', 'r1', {}),
    ).rejects.toThrow(/Execution already exists/);
    expect(served.requests).toBe(1);
  });

  it('an unknown host is not retried, and says so; a dropped connection is', async () => {
    const unknown = sfnWith([{ code: 'ENOTFOUND' }]);
    const err = await startExecution(
      unknown.client,
      'arn:aws:states:us-east-1:1:stateMachine:sm',
      'r1',
      {},
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/ENOTFOUND states\.example\.invalid.*not retried/);
    expect(unknown.served.requests).toBe(1);

    const dropped = sfnWith([{ code: 'ECONNRESET' }, { status: 200, body: { executionArn: 'arn:exec:r1' } }]);
    expect(await startExecution(dropped.client, 'arn:aws:states:us-east-1:1:stateMachine:sm', 'r1', {})).toBe(
      'arn:exec:r1',
    );
    expect(dropped.served.requests).toBe(2);
  });
});
