import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { HeadHyperparametersSchema } from '../src/model/head-hyperparameters.ts';
import { parseInput } from '../src/schema/parse.ts';
import { parseTrainingConfig, TRAINING_DEFAULTS } from '../src/training/training-config.ts';

describe('training.backbone: one or several', () => {
  it.each([
    ['absent: the tiny backbone', undefined, ['tiny']],
    ['one string (old execution inputs)', 's3://b/m.onnx', ['s3://b/m.onnx']],
    ['comma-separated, spaces trimmed', 'a.onnx, b.onnx', ['a.onnx', 'b.onnx']],
    ['a list', ['a.onnx', 'https://x/b.onnx'], ['a.onnx', 'https://x/b.onnx']],
  ])('%s', (_, backbone, want) => {
    expect(parseTrainingConfig(backbone === undefined ? {} : { backbone }).backbone).toEqual(want);
  });

  it.each([
    [
      'an empty entry',
      'a.onnx,,b.onnx',
      'training.backbone lists an empty backbone ("a.onnx,,b.onnx"): name each one',
    ],
    ['the same backbone twice', ['a.onnx', 'a.onnx'], 'training.backbone names backbone a.onnx twice'],
    ['a list with a number', ['a.onnx', 3], 'training.backbone[1] must be a non-empty string, got 3'],
  ])('refuses %s, naming the field', (_, backbone, message) => {
    expect(() => parseTrainingConfig({ backbone })).toThrow(new InputError(message));
  });

  it('flip and tune default to off; weight decay and step size to unset (chosen by the head start)', () => {
    const cfg = parseTrainingConfig({});
    expect(cfg.flip).toBe(false);
    expect(cfg.tune).toBe(false);
    expect(parseTrainingConfig({ tune: true }).tune).toBe(true);
    expect(() => parseTrainingConfig({ tune: 'yes' })).toThrow(/training\.tune/);
    expect(cfg.weightDecay).toBeUndefined();
    expect(cfg.learningRate).toBeUndefined();
  });
});

describe('training options: limits written once, shared with trainHead', () => {
  it.each<[string, unknown, string]>([
    [
      'a hidden layer too wide',
      { hidden: 8193 },
      'training.hidden must be an integer from 0 to 8192, got 8193',
    ],
    ['dropout 0.96', { dropout: 0.96 }, 'training.dropout must be a number from 0 to 0.95, got 0.96'],
    ['no epochs', { epochs: 0 }, 'training.epochs must be an integer from 1 to 10000, got 0'],
    [
      'a decay step that would zero weights',
      { learningRate: 0.1, weightDecay: 10 },
      'training.weightDecay must keep learningRate × weightDecay below 1, got 0.1 × 10',
    ],
    [
      'two channel means',
      { preprocess: { mean: [0.5, 0.5] } },
      'training.preprocess.mean must list 3 numbers (one per channel), got 2',
    ],
    [
      'a zero standard deviation',
      { preprocess: { std: [0.2, 0, 0.2] } },
      'training.preprocess.std must be positive, got [0.2,0,0.2]',
    ],
    [
      'an unknown layout',
      { preprocess: { layout: 'CHW' } },
      'training.preprocess.layout must be one of NCHW, NHWC, got "CHW"',
    ],
    [
      'a misspelt option',
      { epoch: 3 },
      'training has no field epoch: its fields are backbone, preprocess, featureTensor, backboneLabels, initFromBackbone, views, hidden, dropout, learningRate, weightDecay, labelSmoothing, batchSize, epochs, patience, seed, featureBatch, cache, flip, tune',
    ],
  ])('refuses %s', (_, value, message) => {
    expect(() => parseTrainingConfig(value)).toThrow(new InputError(message));
  });

  it('trainHead applies the same limits (one schema: HEAD_HYPERPARAMETERS)', () => {
    const head = { ...TRAINING_DEFAULTS, learningRate: 1e-3, weightDecay: 1e-4 };
    expect(() =>
      parseInput(HeadHyperparametersSchema, { ...head, hidden: 8193 }, { name: 'options', bare: true }),
    ).toThrow(new InputError('hidden must be an integer from 0 to 8192, got 8193'));
    expect(() =>
      parseInput(HeadHyperparametersSchema, { ...head, dropout: 0.96 }, { name: 'options', bare: true }),
    ).toThrow(new InputError('dropout must be a number from 0 to 0.95, got 0.96'));
  });

  it('names the environment variable the Batch job reads it from', () => {
    expect(() => parseTrainingConfig({ views: 17 }, 'DOGBREED_TRAINING')).toThrow(
      new InputError('DOGBREED_TRAINING.views must be an integer from 0 to 16, got 17'),
    );
  });
});
