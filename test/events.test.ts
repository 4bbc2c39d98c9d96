import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { InputError } from '../src/errors.ts';
import { parsePreprocessEvent, parseRunEvent } from '../src/events.ts';
import { DEFAULT_GATE } from '../src/metrics/gate.ts';
import { TRAINING_DEFAULTS } from '../src/training/training-config.ts';

// The edge of every handler: untrusted JSON in, typed values or an InputError naming the field.

describe('parseConfig', () => {
  it('fills the documented defaults for a console-started execution with only a source', () => {
    expect(parseConfig({ source: 's3://b/k.tar' })).toEqual({
      source: 's3://b/k.tar',
      expectedSha256: undefined,
      profile: 'imagefolder',
      minPerClass: undefined,
      maxInvalidShare: undefined,
      seed: 1,
      split: [0.7, 0.15, 0.15],
      shardSize: 256,
      resizeShorter: 256,
      cache: true,
      training: TRAINING_DEFAULTS,
      gate: DEFAULT_GATE,
    });
  });

  it('lower-cases the expected checksum', () => {
    expect(parseConfig({ source: 'x', expectedSha256: 'AB'.repeat(32) }).expectedSha256).toBe(
      'ab'.repeat(32),
    );
  });

  it.each([
    [{}, 'config.source must be a non-empty string, got nothing'],
    [{ source: 'x', seed: 1.5 }, 'config.seed must be an integer from 0 to 4294967295, got 1.5'],
    [{ source: 'x', shardSize: 0 }, 'config.shardSize must be an integer from 1 to 100000, got 0'],
    [{ source: 'x', split: [0.7, 0.3] }, 'config.split must list 3 ratios (train, val, test), got 2'],
    [{ source: 'x', split: 'abc' }, 'config.split must be an array, got "abc"'],
    [
      { source: 'x', profile: 'cats' },
      'config.profile must be one of stanford-dogs, imagefolder, got "cats"',
    ],
    [{ source: 'x', expectedSha256: 'abc' }, 'config.expectedSha256 has an unexpected format: "abc"'],
    [{ source: 'x', maxInvalidShare: 2 }, 'config.maxInvalidShare must be a number from 0 to 1, got 2'],
    [{ source: 'x', cache: 'no' }, 'config.cache must be true or false, got "no"'],
    [
      { source: 'x', training: { epochs: 0 } },
      'config.training.epochs must be an integer from 1 to 10000, got 0',
    ],
    [
      { source: 'x', training: { hidden: -1 } },
      'config.training.hidden must be an integer from 0 to 8192, got -1',
    ],
  ])('rejects %j', (config, message) => {
    expect(() => parseConfig(config)).toThrow(new InputError(message));
  });
});

describe('state events', () => {
  it('requires a run id of safe characters', () => {
    expect(() => parseRunEvent({ runId: '../etc', config: { source: 'x' } })).toThrow(
      'event.runId has an unexpected format: "../etc"',
    );
    expect(() => parseRunEvent(null)).toThrow('event must be an object, got null');
  });

  it('parses a Preprocess item and names a bad shard field', () => {
    const shard = { split: 'train', index: 3, listKey: 'l', outputKey: 'o', count: 10 };
    const event = { runId: 'r1', config: { source: 'x' }, tarKey: 'datasets/a/images.tar', shard };
    expect(parsePreprocessEvent(event).shard).toEqual(shard);
    expect(() => parsePreprocessEvent({ ...event, shard: { ...shard, split: 'holdout' } })).toThrow(
      'event.shard.split must be one of train, val, test, got "holdout"',
    );
  });
});
