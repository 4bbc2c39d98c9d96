import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

// The one ASL file, as AWS and the local engine both run it. Its `${Name}` placeholders are
// the only thing that differs between them (CloudFormation DefinitionSubstitutions on AWS).

// Two folders below the root, here and in the CLI's bundle (.build/cli/main.mjs), so the
// relative URL holds in either.
export const DEFINITION_PATH = fileURLToPath(
  new URL('../../statemachine/pipeline.asl.json', import.meta.url),
);

export function placeholders(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!))].sort();
}

export function substitute(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}/g, (_whole, name: string) => {
    const value = values[name];
    if (value === undefined)
      throw new Error(`no substitution for \${${name}} in the state machine definition`);
    return value;
  });
}

const LOCAL_ARN = 'us-east-1:000000000000';

/** Local stand-ins: real-looking ARNs of the right kind, one per placeholder. */
export function localSubstitutions(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of placeholders(text)) {
    const base = name.replace(/(FunctionArn|JobQueueArn|JobDefinitionArn)$/, '');
    if (name.endsWith('FunctionArn'))
      values[name] = `arn:aws:lambda:${LOCAL_ARN}:function:dogbreed-local-${base}`;
    else if (name.endsWith('JobQueueArn'))
      values[name] = `arn:aws:batch:${LOCAL_ARN}:job-queue/dogbreed-local-${base}`;
    else if (name.endsWith('JobDefinitionArn'))
      values[name] = `arn:aws:batch:${LOCAL_ARN}:job-definition/dogbreed-local-${base}:1`;
    else throw new Error(`no local value for \${${name}} in the state machine definition`);
  }
  return values;
}

export async function loadLocalDefinition(path = DEFINITION_PATH): Promise<Record<string, unknown>> {
  const text = await readFile(path, 'utf8');
  return JSON.parse(substitute(text, localSubstitutions(text))) as Record<string, unknown>;
}
