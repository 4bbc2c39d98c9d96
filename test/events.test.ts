import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { InputError } from '../src/errors.ts';
import {
  parseManifestsEvent,
  parsePreprocessEvent,
  parseRunEvent,
  parseValidateEvent,
  parseVerifyEvent,
  parseWriteReportEvent,
} from '../src/events.ts';
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
    [
      { source: 'x', expectedSha256: 'abc' },
      'config.expectedSha256 must be 64 hexadecimal digits (a SHA-256), got "abc"',
    ],
    [{ source: 'x', split: [0.5, 0.5, 0.5] }, 'config.split must sum to 1 (train + val + test), got 1.5'],
    [{ source: 'x', gate: { accuracy: 2 } }, 'config.gate.accuracy must be a number from 0 to 1, got 2'],
    [
      { source: 'x', training: { learningRate: 0.5, weightDecay: 100 } },
      'config.training.weightDecay must keep learningRate × weightDecay below 1, got 0.5 × 100',
    ],
    [{ source: 'x', maxInvalidShare: 2 }, 'config.maxInvalidShare must be a number from 0 to 1, got 2'],
    [{ source: 'x', minPerClass: 0 }, 'config.minPerClass must be an integer from 1 to 1000000, got 0'],
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
  const config = { source: 'x' };
  const dataset = {
    datasetId: '0123456789abcdef',
    tarKey: 'datasets/a/images.tar',
    sha256: 'a'.repeat(64),
    bytes: 10,
  };
  const verify = { inventoryKey: 'i', indexKey: 'x', images: 9, classes: 3, invalid: 0 };

  it('requires a run id of safe characters', () => {
    expect(() => parseRunEvent({ runId: '../etc', config })).toThrow(
      new InputError(
        'runId must be 1 to 80 letters, digits, _ . or -, starting with a letter or digit, got "../etc"',
      ),
    );
    expect(() => parseRunEvent(null)).toThrow(new InputError('event must be an object, got null'));
  });

  it('names a configuration field by its path in the execution input', () => {
    expect(() => parseRunEvent({ runId: 'r1', config: { source: 'x', split: [0.5, 0.5, 0.5] } })).toThrow(
      new InputError('config.split must sum to 1 (train + val + test), got 1.5'),
    );
  });

  it('parses a Preprocess item and names a bad shard field', () => {
    const shard = { split: 'train', index: 3, listKey: 'l', outputKey: 'o', count: 10 };
    const event = { runId: 'r1', config, tarKey: 'datasets/a/images.tar', shard };
    expect(parsePreprocessEvent(event).shard).toEqual(shard);
    expect(() => parsePreprocessEvent({ ...event, shard: { ...shard, split: 'holdout' } })).toThrow(
      new InputError('shard.split must be one of train, val, test, got "holdout"'),
    );
    expect(() => parsePreprocessEvent({ ...event, shard: { ...shard, count: 100_001 } })).toThrow(
      new InputError('shard.count must be an integer from 1 to 100000, got 100001'),
    );
  });

  it.each<[string, (e: unknown) => unknown, unknown, string]>([
    [
      'VerifyDataset: a dataset id that is not 16 hex digits',
      parseVerifyEvent,
      { runId: 'r1', config, dataset: { ...dataset, datasetId: 'xyz' } },
      'dataset.datasetId has an unexpected format, got "xyz"',
    ],
    [
      'BuildManifests: no verification result',
      parseManifestsEvent,
      { runId: 'r1', config, dataset },
      'verify must be an object, got nothing',
    ],
    [
      'BuildManifests: a negative image count',
      parseManifestsEvent,
      { runId: 'r1', config, dataset, verify: { ...verify, images: -1 } },
      'verify.images must be an integer from 0 to 9007199254740991, got -1',
    ],
    [
      'ValidateShard: a task without its shard',
      parseValidateEvent,
      { runId: 'r1', config, task: { index: 0, predictionsKey: 'p', count: 3 } },
      'task.shardKey must be a non-empty string, got nothing',
    ],
    [
      'WriteReport: a prediction count that is not a number',
      parseWriteReportEvent,
      {
        runId: 'r1',
        config,
        dataset,
        counts: { train: 1, val: 1, test: 1 },
        predictions: [{ predictionsKey: 'p', images: 'three', correct: 1 }],
      },
      'predictions[0].images must be an integer from 0 to 100000, got "three"',
    ],
  ])('refuses %s', (_, parse, event, message) => {
    expect(() => parse(event)).toThrow(new InputError(message));
  });

  it('WriteReport: seconds per state from the outputs that carry them', () => {
    const event = parseWriteReportEvent({
      runId: 'r1',
      config,
      dataset: { ...dataset, seconds: 1.234 },
      verify: { ...verify, reused: true, seconds: 2 },
      manifests: { seconds: 0.5 },
      counts: { train: 6, val: 2, test: 1 },
      shards: [
        { key: 's0', cached: true, seconds: 1 },
        { key: 's1', seconds: 2.5 },
      ],
      training: { startedAt: 1_000, stoppedAt: 61_000 },
      predictions: [{ predictionsKey: 'p', images: 1, correct: 1, seconds: 0.25 }],
    });
    expect(event.timings).toEqual({
      FetchDataset: 1.23,
      VerifyDataset: 2,
      BuildManifests: 0.5,
      Preprocess: 3.5,
      Validate: 0.25,
      TrainModel: 60,
    });
    expect(event.dataset).toEqual({ ...dataset, skipped: false });
    expect(event.verify).toEqual({ key: 'i', cached: true, seconds: 2 });
    expect(event.shards).toEqual([
      { key: 's0', cached: true, seconds: 1 },
      { key: 's1', cached: false, seconds: 2.5 },
    ]);
  });
});
