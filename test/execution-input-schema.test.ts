import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withWorkspaceStore } from '../src/cli/workspace.ts';
import { ExecutionInputSchema, parseConfig } from '../src/config.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { InputError } from '../src/errors.ts';
import { runLocalPipeline } from '../src/local/pipeline.ts';
import { parseInput } from '../src/schema/parse.ts';

// The execution input is checked whole by the first state, so bad configuration fails before
// any work, with the field named as the user wrote it in the input (a JSON path).

describe('the execution input schema', () => {
  const parse = (input: unknown) => parseInput(ExecutionInputSchema, input, { name: 'input', bare: true });

  it('takes a console-started input with only a source', () => {
    expect(parse({ config: { source: 's3://b/k.tar' } }).config.split).toEqual([0.7, 0.15, 0.15]);
  });

  it.each<[string, unknown, string]>([
    ['no config', {}, 'config must be an object, got nothing'],
    [
      'ratios that do not sum to 1',
      { config: { source: 'x', split: [0.5, 0.5, 0.5] } },
      'config.split must sum to 1 (train + val + test), got 1.5',
    ],
    [
      'a zero ratio',
      { config: { source: 'x', split: [0.7, 0.3, 0] } },
      'config.split[2] must be a number above 0 and at most 1 (every class is in every split), got 0',
    ],
    [
      'a ratio above 1',
      { config: { source: 'x', split: [1.5, -0.25, -0.25] } },
      'config.split[0] must be a number above 0 and at most 1 (every class is in every split), got 1.5; config.split[1] must be a number above 0 and at most 1 (every class is in every split), got -0.25; config.split[2] must be a number above 0 and at most 1 (every class is in every split), got -0.25',
    ],
    [
      'a misspelt field',
      { config: { source: 'x', shardsize: 10 } },
      'config has no field shardsize: its fields are source, expectedSha256, profile, minPerClass, maxInvalidShare, seed, split, shardSize, resizeShorter, cache, training, gate',
    ],
    [
      'a hidden layer over the limit trainHead applies',
      { config: { source: 'x', training: { hidden: 65_536 } } },
      'config.training.hidden must be an integer from 0 to 8192, got 65536',
    ],
    [
      'a dropout of 0.99',
      { config: { source: 'x', training: { dropout: 0.99 } } },
      'config.training.dropout must be a number from 0 to 0.95, got 0.99',
    ],
    [
      'a shard size over the most a shard task may count',
      { config: { source: 'x', shardSize: 100_001 } },
      'config.shardSize must be an integer from 1 to 100000, got 100001',
    ],
  ])('refuses %s', (_, input, message) => {
    expect(() => parse(input)).toThrow(new InputError(message));
  });

  it('keeps the value given in messages short', () => {
    expect(() => parseConfig({ source: 'x', profile: 'p'.repeat(100) })).toThrow(
      /^config\.profile must be one of stanford-dogs, imagefolder, got "p{56}\.\.\.$/,
    );
  });
});

describe('bad configuration on the local state machine', () => {
  let workspace: string;
  beforeAll(async () => {
    workspace = await mkdtemp(join(tmpdir(), 'dogbreed-input-'));
  });
  afterAll(() => rm(workspace, { recursive: true, force: true }));

  it('fails in FetchDataset, naming config.split, before any dataset object is written', async () => {
    const source = join(workspace, 'sample.tar');
    await writeSampleTarball(source, { classes: 3, perClass: 4, seed: 1 });
    const r = await runLocalPipeline({
      workspace,
      runId: 'run-bad-split',
      config: { source, split: [0.5, 0.5, 0.5] },
    });
    expect(r.status).toBe('FAILED');
    expect(r.failure).toMatchObject({ runId: 'run-bad-split', state: 'FetchDataset', error: 'InputError' });
    expect(r.failure?.cause).toContain('config.split must sum to 1 (train + val + test), got 1.5');
    expect(r.timings.map((t) => t.state)).not.toContain('VerifyDataset');
    await withWorkspaceStore(workspace, async (store) => {
      const written: string[] = [];
      for await (const o of store.list('datasets/')) written.push(o.key);
      expect(written).toEqual([]);
    });
  });
});
