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

  it('catches every failure of every top-level Task and Map into ReportFailure, naming the state', () => {
    const top = Object.entries(definition.States).filter(
      ([n, s]) => ['Task', 'Map'].includes(s.Type) && n !== 'ReportFailure',
    );
    expect(top.length).toBeGreaterThanOrEqual(4);
    for (const [name, s] of top) {
      const [c] = s.Catch as { ErrorEquals: string[]; Next: string; ResultPath: string }[];
      expect(c?.ErrorEquals).toEqual(['States.ALL']);
      expect(c?.ResultPath).toBe('$.error');
      const failed = definition.States[c!.Next]!;
      expect((failed.Parameters as Record<string, unknown>).state).toBe(name);
      expect(failed.Next).toBe('ReportFailure');
    }
    expect(definition.States.ReportFailure?.Next).toBe('Failed');
    expect(definition.States.Failed?.Type).toBe('Fail');
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
