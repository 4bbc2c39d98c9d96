import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PipelineError } from '../errors.ts';

// The local stand-in for AWS Batch: the training entry point as a child process with the
// container's environment contract. Its stdout lines are what CloudWatch would show; the
// timeout stops the process, as Batch's attemptDurationSeconds would.

/** What a failed Batch job looks like to Step Functions (submitJob.sync): States.TaskFailed. */
export class BatchJobFailed extends PipelineError {
  override name = 'States.TaskFailed';
}

export interface BatchJobSpec {
  jobName: string;
  command: string[];
  env: Record<string, string>;
  timeoutMs: number;
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Grace period between SIGTERM and SIGKILL, as Batch gives the container. */
  killGraceMs?: number;
}

export interface BatchJobResult {
  JobId: string;
  JobName: string;
  Status: 'SUCCEEDED';
  ExitCode: 0;
  StartedAt: number;
  StoppedAt: number;
}

/** Keeps the last lines of output for the failure message. */
function tail(limit: number) {
  const lines: string[] = [];
  return {
    push(line: string) {
      lines.push(line);
      if (lines.length > limit) lines.shift();
    },
    text: () => lines.join('\n'),
  };
}

export function runBatchJob(spec: BatchJobSpec): Promise<BatchJobResult> {
  const startedAt = Date.now();
  const jobId = `local-${startedAt.toString(36)}`;
  const [cmd, ...args] = spec.command;
  if (!cmd) return Promise.reject(new Error('runBatchJob: empty command'));
  const child = spawn(cmd, args, {
    // The job's stdin stays open while this process lives: a job that sees it end knows its
    // parent died (even by SIGKILL) and stops, instead of running on orphaned.
    env: { ...process.env, ...spec.env, DOGBREED_EXIT_WITH_PARENT: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const errors = tail(20);
  for (const [stream, name] of [
    [child.stdout, 'stdout'],
    [child.stderr, 'stderr'],
  ] as const) {
    createInterface({ input: stream }).on('line', (line) => {
      if (name === 'stderr') errors.push(line);
      spec.onLine?.(line, name);
    });
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), spec.killGraceMs ?? 5000).unref();
  }, spec.timeoutMs);

  return new Promise((resolve, reject) => {
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new BatchJobFailed(`job ${spec.jobName} could not start: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new BatchJobFailed(
            `job ${spec.jobName} timed out after ${Math.round(spec.timeoutMs / 1000)} s and was stopped; raise the TrainModel timeout or train for fewer epochs`,
          ),
        );
      } else if (code !== 0) {
        const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        const detail = errors.text();
        reject(new BatchJobFailed(`job ${spec.jobName} ${why}${detail ? `:\n${detail}` : ''}`));
      } else {
        resolve({
          JobId: jobId,
          JobName: spec.jobName,
          Status: 'SUCCEEDED',
          ExitCode: 0,
          StartedAt: startedAt,
          StoppedAt: Date.now(),
        });
      }
    });
  });
}
