import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inject } from 'vitest';

// `serverless package` (osls + serverless-step-functions + serverless-esbuild) run offline with
// no AWS credentials at all, once per `vitest run`: the first test file that asks packages into
// the run's scratch folder (test/global-setup.ts), the others wait for it and read the result.

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PACKAGE_STAGE = 'test';
export const PACKAGE_REGION = 'us-east-1';
/** About a minute and a half alone; minutes on two cores shared with other test files. */
const PACKAGE_TIMEOUT_MS = 360_000;
const WAIT_MS = PACKAGE_TIMEOUT_MS + 60_000;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Obj = { [key: string]: Json };
export interface Resource {
  Type: string;
  Properties: Obj;
  DependsOn?: string | string[];
  Condition?: string;
}
export interface Template {
  Resources: Record<string, Resource>;
  Outputs: Record<string, { Value: Json }>;
  Parameters: Record<string, Obj>;
  Conditions?: Record<string, Json>;
  Rules?: Record<
    string,
    { RuleCondition?: Json; Assertions: { Assert: Json; AssertDescription?: string }[] }
  >;
}

export interface LayerBuild {
  bytes: number;
  layers: { name: string; bytes: number }[];
}

export interface Packaged {
  /** The package folder: the templates and one zip per function and layer. */
  dir: string;
  /** cloudformation-template-update-stack.json, parsed. */
  template: Template;
}

async function packageInto(work: string, dir: string): Promise<void> {
  // No credentials anywhere and no instance metadata: any AWS API call would fail the package.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: work,
    AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-credentials'),
    AWS_CONFIG_FILE: join(work, 'no-config'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
    CI: 'true',
  };
  const cli = join(ROOT, 'node_modules/osls/bin/serverless.js');
  const args = ['package', '--stage', PACKAGE_STAGE, '--region', PACKAGE_REGION, '--package', dir];
  try {
    await run(process.execPath, [cli, ...args], {
      cwd: ROOT,
      env,
      maxBuffer: 16 << 20,
      timeout: PACKAGE_TIMEOUT_MS,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string; killed?: boolean };
    const why = e.killed ? ` (killed: over the ${PACKAGE_TIMEOUT_MS / 1000} s limit)` : '';
    throw new Error(`serverless package failed${why}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

let packaged: Promise<Packaged> | undefined;

/** The packaged service, made once per test run whichever file asks first. */
export function packageService(): Promise<Packaged> {
  packaged ??= (async () => {
    const work = join(inject('runDir'), 'serverless');
    const dir = join(work, 'package');
    const outcome = join(work, 'outcome.json');
    let owner = true;
    try {
      await mkdir(work); // atomic: one file packages, the others wait
    } catch {
      owner = false;
    }
    const settle = async (result: { ok: boolean; error?: string }) => {
      await writeFile(`${outcome}.part`, JSON.stringify(result));
      await rename(`${outcome}.part`, outcome); // waiters never read half of it
    };
    if (owner) {
      try {
        await packageInto(work, dir);
        await settle({ ok: true });
      } catch (err) {
        await settle({ ok: false, error: (err as Error).message });
        throw err;
      }
    } else {
      const deadline = Date.now() + WAIT_MS;
      while (!existsSync(outcome)) {
        if (Date.now() > deadline) throw new Error(`serverless package in ${work} did not finish in time`);
        await sleep(500);
      }
      const { ok, error } = JSON.parse(await readFile(outcome, 'utf8')) as { ok: boolean; error?: string };
      if (!ok) throw new Error(error);
    }
    const template = JSON.parse(
      await readFile(join(dir, 'cloudformation-template-update-stack.json'), 'utf8'),
    ) as Template;
    return { dir, template };
  })();
  return packaged;
}
