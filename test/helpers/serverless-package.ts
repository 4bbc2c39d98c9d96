import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// `serverless package` (osls + serverless-step-functions + serverless-esbuild), run offline with
// no AWS credentials at all: the CloudFormation template and the artefacts a deploy would upload.
// Packaging takes a minute on two cores, so the tests that read the template share one run.

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MB = 1024 * 1024;

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
  /** The folder the artefacts (function and layer zips, templates) are in. */
  dir: string;
  template: Template;
  /** The layer build's own report (serverless.yml's plugin builds the layers again, identically). */
  layers: LayerBuild;
}

/** Packages the service for stage "test" in us-east-1 into `dir`, with no AWS access possible. */
export async function packageService(work: string, dir = join(work, 'package')): Promise<Packaged> {
  const built = await run(process.execPath, [join(ROOT, 'layers/build-layers.mjs'), '--json'], { cwd: ROOT });
  const layers = JSON.parse(built.stdout) as LayerBuild;
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
  const args = ['package', '--stage', 'test', '--region', 'us-east-1', '--package', dir];
  try {
    // About a minute and a half alone; minutes on two cores shared with other test files.
    await run(process.execPath, [cli, ...args], { cwd: ROOT, env, maxBuffer: 16 * MB, timeout: 360_000 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string; killed?: boolean };
    const why = e.killed ? ' (killed: over the 360 s limit)' : '';
    throw new Error(`serverless package failed${why}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
  const template = JSON.parse(
    readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8'),
  ) as Template;
  return { dir, template, layers };
}
