import { createHash } from 'node:crypto';
import type { PipelineConfig } from '../types.ts';
import type { ObjectStore } from './object-store.ts';

// What a run records about its own execution, so that a failed or killed run can be resumed
// under the same run id: its input, each Task's result (keyed by the Task and the hash of its
// input, so every Map item has its own), and each resume. Every record is one small PUT: it
// exists whole or not at all, and a Task's record is written only after the Task succeeded.

export interface ExecutionStart {
  runId: string;
  config: PipelineConfig;
  startedAt: string;
  /** The local process running it: alive means running, gone without an end means interrupted. */
  pid?: number;
  host?: string;
}

/** Whether a process of this machine is alive (EPERM: alive, someone else's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface ResumeRecord {
  at: string;
  /** The first state that ran again (the earlier ones were taken from their recorded results). */
  fromState: string;
  /** `local` (replayed from the journal) or `redrive` (Step Functions' RedriveExecution). */
  how: 'local' | 'redrive';
}

const prefix = (runId: string) => `runs/${runId}/execution/`;

export const journalKeys = {
  start: (runId: string) => `${prefix(runId)}start.json`,
  resumes: (runId: string) => `${prefix(runId)}resumes.json`,
  task: (runId: string, state: string, input: unknown) =>
    `${prefix(runId)}tasks/${state}/${createHash('sha256').update(JSON.stringify(input)).digest('hex').slice(0, 32)}.json`,
};

export const readStart = (store: ObjectStore, runId: string) =>
  store.getJsonIfExists<ExecutionStart>(journalKeys.start(runId));

export async function readResumes(store: ObjectStore, runId: string): Promise<ResumeRecord[]> {
  return (await store.getJsonIfExists<ResumeRecord[]>(journalKeys.resumes(runId))) ?? [];
}

export async function appendResume(store: ObjectStore, runId: string, record: ResumeRecord): Promise<void> {
  await store.putJson(journalKeys.resumes(runId), [...(await readResumes(store, runId)), record]);
}

/** A Task's recorded result, or undefined when it has none (never ran to success). */
export async function recordedResult(
  store: ObjectStore,
  runId: string,
  state: string,
  input: unknown,
): Promise<{ output: unknown } | undefined> {
  return store.getJsonIfExists<{ output: unknown }>(journalKeys.task(runId, state, input));
}

export async function recordResult(
  store: ObjectStore,
  runId: string,
  state: string,
  input: unknown,
  output: unknown,
): Promise<void> {
  await store.putJson(journalKeys.task(runId, state, input), { output });
}
