import { readFileSync } from 'node:fs';
import aslValidator from 'asl-validator';
import { describe, expect, it } from 'vitest';
import {
  DEFINITION_PATH,
  loadLocalDefinition,
  localSubstitutions,
  placeholders,
  substitute,
} from '../src/local/definition.ts';
import { localHandlers } from '../src/local/handlers.ts';

type State = Record<string, unknown> & { Type: string };
const text = readFileSync(DEFINITION_PATH, 'utf8');
const definition = JSON.parse(text) as { StartAt: string; States: Record<string, State> };

function allStates(states: Record<string, State>): [string, State][] {
  return Object.entries(states).flatMap(([name, s]) => {
    const inner = (s.ItemProcessor ?? s.Iterator) as { States: Record<string, State> } | undefined;
    return [[name, s] as [string, State], ...(inner ? allStates(inner.States) : [])];
  });
}

describe('statemachine/pipeline.asl.json', () => {
  it('is valid ASL (asl-validator) after substitution', async () => {
    const result = aslValidator(await loadLocalDefinition());
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
  });

  it('uses JSONPath only, never JSONata (the local engine cannot run it)', () => {
    expect(text).not.toMatch(/QueryLanguage|JSONata|\{%/);
  });

  it('has a local handler for every Task, and a placeholder for every function ARN and the Batch job', () => {
    const tasks = allStates(definition.States).filter(([, s]) => s.Type === 'Task');
    expect(tasks.map(([n]) => n).sort()).toEqual(Object.keys(localHandlers).sort());
    const lambdas = tasks.filter(([name]) => name !== 'TrainModel');
    for (const [name, s] of lambdas) expect(s.Resource).toBe(`\${${name}FunctionArn}`);
    expect(placeholders(text)).toEqual(
      [...lambdas.map(([n]) => `${n}FunctionArn`), 'TrainJobDefinitionArn', 'TrainJobQueueArn'].sort(),
    );
  });

  it('runs TrainModel as a synchronous Batch job whose overrides carry keys and options, not data', () => {
    const train = definition.States.TrainModel!;
    expect(train.Resource).toBe('arn:aws:states:::batch:submitJob.sync');
    const params = train.Parameters as { ContainerOverrides: { Environment: { Name: string }[] } };
    expect(params.ContainerOverrides.Environment.map((e) => e.Name)).toEqual([
      'DOGBREED_RUN_ID',
      'DOGBREED_TRAINING',
    ]);
    expect(train.TimeoutSeconds).toBeGreaterThanOrEqual(3600);
    const retry = train.Retry as { ErrorEquals: string[] }[];
    expect(retry[0]?.ErrorEquals).toContain('Batch.AWSBatchException');
  });

  it('catches no failure, so the execution fails at the state that failed and a redrive reruns it', () => {
    // A Catch would lead a failure on to other states (a Fail state at the end): RedriveExecution
    // continues from the unsuccessful step, which would then be that Fail state, not the Task.
    // failure.json is written outside the machine (ReportFailure on the EventBridge event).
    const states = allStates(definition.States);
    expect(states.filter(([, s]) => s.Catch !== undefined).map(([n]) => n)).toEqual([]);
    expect(states.filter(([, s]) => s.Type === 'Fail').map(([n]) => n)).toEqual([]);
    expect(states.map(([n]) => n)).not.toContain('ReportFailure');
    // Every state still reaches the end: the top-level chain runs from StartAt to the Succeed.
    const chain: string[] = [];
    for (let name: string | undefined = definition.StartAt; name; ) {
      chain.push(name);
      name = definition.States[name]?.Next as string | undefined;
    }
    expect([...chain].sort()).toEqual(Object.keys(definition.States).sort());
    expect(definition.States[chain.at(-1)!]?.Type).toBe('Succeed');
  });

  it('retries transient errors with backoff on every Lambda Task, and gives each an explicit timeout', () => {
    const lambdas = allStates(definition.States).filter(([n, s]) => s.Type === 'Task' && n !== 'TrainModel');
    for (const [name, s] of lambdas) {
      const retry = s.Retry as { ErrorEquals: string[]; BackoffRate: number; MaxAttempts: number }[];
      expect(retry?.[0]?.ErrorEquals, name).toContain('TransientError');
      expect(retry?.[0]?.ErrorEquals, name).toContain('Lambda.TooManyRequestsException');
      expect(retry?.[0]?.BackoffRate, name).toBeGreaterThan(1);
      expect(s.TimeoutSeconds, name).toBeGreaterThan(0);
      expect(s.TimeoutSeconds, name).toBeLessThanOrEqual(900); // Lambda's own limit
    }
  });

  it('substitute refuses a placeholder it has no value for', () => {
    expect(() => substitute('{"R":"${Missing}"}', {})).toThrow('no substitution for ${Missing}');
    expect(
      localSubstitutions('"${FetchDatasetFunctionArn}" "${TrainJobQueueArn}" "${TrainJobDefinitionArn}"'),
    ).toEqual({
      FetchDatasetFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:dogbreed-local-FetchDataset',
      TrainJobQueueArn: 'arn:aws:batch:us-east-1:000000000000:job-queue/dogbreed-local-Train',
      TrainJobDefinitionArn: 'arn:aws:batch:us-east-1:000000000000:job-definition/dogbreed-local-Train:1',
    });
    expect(() => localSubstitutions('"${Mystery}"')).toThrow('no local value for ${Mystery}');
  });
});
