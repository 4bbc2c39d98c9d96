import { describe, expect, it } from 'vitest';
import { decimal, decimals, parseFlags } from '../src/cli/flags.ts';
import { ConfigSchema } from '../src/config.ts';
import { InputError } from '../src/errors.ts';

// Flags into a schema's input, refusals back to the flag and the text typed.

const FLAGS = {
  source: { path: ['source'] },
  split: { path: ['split'], read: decimals },
  hidden: { path: ['training', 'hidden'], read: decimal },
  backbone: { path: ['training', 'backbone'] },
};

describe('parseFlags', () => {
  it('reads plain decimals as numbers and leaves anything else as the text typed', () => {
    expect([decimal('3'), decimal(' .5 '), decimal('1e-4'), decimal('-2')]).toEqual([3, 0.5, 1e-4, -2]);
    expect([decimal(''), decimal('0x10'), decimal('Infinity'), decimal('ten')]).toEqual([
      '',
      '0x10',
      'Infinity',
      'ten',
    ]);
    expect(decimals('0.7,0.15,0.15')).toEqual([0.7, 0.15, 0.15]);
  });

  it('sets each flag at its path, joining a repeated flag with commas', () => {
    const config = parseFlags(
      ConfigSchema,
      { source: 's', hidden: '16', backbone: ['a.onnx', 'b.onnx'] },
      FLAGS,
    );
    expect(config.training.hidden).toBe(16);
    expect(config.training.backbone).toEqual(['a.onnx', 'b.onnx']);
  });

  it.each<[Record<string, unknown>, string]>([
    [{ split: '0.5,0.5,0.5' }, '--split must sum to 1 (train + val + test), got 1.5'],
    [
      { split: '0.5,x,0.5' },
      '--split must be a number above 0 and at most 1 (every class is in every split), got "0.5,x,0.5"',
    ],
    [{ hidden: '0x10' }, '--hidden must be an integer from 0 to 8192, got "0x10"'],
    [{ backbone: ['a.onnx', 'a.onnx'] }, '--backbone names backbone a.onnx twice'],
  ])('names the flag and the text typed: %j', (values, message) => {
    expect(() => parseFlags(ConfigSchema, { source: 's', ...values }, FLAGS)).toThrow(
      new InputError(message),
    );
  });

  it('names a field no flag sets by its path', () => {
    expect(() => parseFlags(ConfigSchema, {}, { hidden: FLAGS.hidden })).toThrow(
      new InputError('source must be a non-empty string, got nothing'),
    );
  });
});
