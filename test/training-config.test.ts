import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { parseTrainingConfig } from '../src/training/training-config.ts';

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
