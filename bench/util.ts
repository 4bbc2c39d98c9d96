import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

// Shared helpers of the benchmarks: progress on stderr, timing, best-of-N, child processes.

export const MiB = 1024 * 1024;

/** Progress goes to stderr: stdout carries the one JSON document. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Rounds for the report (3 significant decimals are plenty for timings and ratios). */
export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Wall-clock seconds of one call. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - start) / 1000, value };
}

export interface Measured {
  /** Fastest run: the least disturbed one. */
  seconds: number;
  allSeconds: number[];
}

/**
 * Runs every contender `runs` times, taking turns (A B C, A B C, ...) so that a burst of load from
 * elsewhere on the machine hits all of them alike, and keeps each one's fastest run.
 */
export async function interleavedBest<K extends string>(
  runs: number,
  label: string,
  contenders: Record<K, () => Promise<unknown>>,
): Promise<Record<K, Measured>> {
  const names = Object.keys(contenders) as K[];
  const all = new Map<K, number[]>(names.map((n) => [n, []]));
  for (let i = 1; i <= runs; i++) {
    for (const name of names) {
      const { seconds } = await timed(contenders[name]);
      all.get(name)!.push(seconds);
      progress(`${label} ${name}: run ${i}/${runs} ${seconds.toFixed(2)} s`);
    }
  }
  const out = {} as Record<K, Measured>;
  for (const name of names) {
    const times = all.get(name)!;
    out[name] = { seconds: Math.min(...times), allSeconds: times.map((t) => round(t)) };
  }
  return out;
}

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output (stdin closed unless `input` is given). */
export function runChild(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    // A child that exits without reading its input (e.g. `--version`) must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Like runChild, but a non-zero exit is an error that carries the end of stderr. */
export async function runChecked(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<string> {
  const res = await runChild(command, args, opts);
  if (res.code !== 0)
    throw new Error(
      `${command} ${args.join(' ')} exited with ${res.code}: ${res.stderr.trim().slice(-2000)}`,
    );
  return res.stdout;
}

/** A fresh folder under the OS temp dir for one benchmark's generated inputs. */
export function newTempDir(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `dogbreed-bench-${name}-`));
}
