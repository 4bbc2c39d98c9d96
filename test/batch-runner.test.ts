import { describe, expect, it } from 'vitest';
import { BatchJobFailed, runBatchJob } from '../src/local/batch-runner.ts';

// The local stand-in for AWS Batch: a child process with the job's environment, its log lines
// streamed, a non-zero exit and a timeout both failing the job as States.TaskFailed.

const node = (code: string) => [process.execPath, '-e', code];

describe('runBatchJob', () => {
  it('passes the environment, streams each output line and succeeds on exit 0', async () => {
    const lines: string[] = [];
    const r = await runBatchJob({
      jobName: 'train-ok',
      command: node('console.log("epoch 1 " + process.env.DOGBREED_RUN_ID); console.log("epoch 2")'),
      env: { DOGBREED_RUN_ID: 'run-7' },
      timeoutMs: 20_000,
      onLine: (line, stream) => lines.push(`${stream}:${line}`),
    });
    expect(lines).toEqual(['stdout:epoch 1 run-7', 'stdout:epoch 2']);
    expect(r).toMatchObject({ JobName: 'train-ok', Status: 'SUCCEEDED', ExitCode: 0 });
  });

  it('fails with the exit code and the last error lines on a non-zero exit', async () => {
    const err = await runBatchJob({
      jobName: 'train-bad',
      command: node('console.error("BACKBONE_URI: file not found"); process.exit(3)'),
      env: {},
      timeoutMs: 20_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchJobFailed);
    expect((err as Error).name).toBe('States.TaskFailed');
    expect((err as Error).message).toBe('job train-bad exited with code 3:\nBACKBONE_URI: file not found');
  });

  it('stops a job that outlives its timeout and fails it, saying what to change', async () => {
    const started = Date.now();
    const err = await runBatchJob({
      jobName: 'train-slow',
      command: node('setTimeout(() => {}, 60_000)'),
      env: {},
      timeoutMs: 300,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /^job train-slow timed out after 0 s and was stopped; raise the TrainModel timeout/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('escalates to SIGKILL when the job ignores SIGTERM', async () => {
    const started = Date.now();
    const err = await runBatchJob({
      jobName: 'train-stubborn',
      command: node('process.on("SIGTERM", () => {}); console.log("ready"); setTimeout(() => {}, 60_000)'),
      env: {},
      timeoutMs: 500,
      killGraceMs: 300,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toContain('timed out');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('fails clearly when the command cannot start', async () => {
    await expect(
      runBatchJob({ jobName: 'train-missing', command: ['/nonexistent/train'], env: {}, timeoutMs: 5000 }),
    ).rejects.toThrow(/job train-missing could not start: spawn \/nonexistent\/train ENOENT/);
  });
});
