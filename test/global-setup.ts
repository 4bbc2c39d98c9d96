import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

// One scratch folder per `vitest run`, shared by every test file (each runs in its own worker):
// what is costly and identical for all, like `serverless package`, is made there once.

declare module 'vitest' {
  export interface ProvidedContext {
    runDir: string;
  }
}

let runDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  runDir = await mkdtemp(join(tmpdir(), 'dogbreed-test-run-'));
  project.provide('runDir', runDir);
}

export async function teardown(): Promise<void> {
  if (runDir) await rm(runDir, { recursive: true, force: true });
}
