import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { computeMetrics } from '../src/metrics/compute.ts';
import { comparePromotion, DEFAULT_GATE, evaluateGate, parseGate } from '../src/metrics/gate.ts';
import type { GateResult } from '../src/metrics/types.ts';

const metrics = (accuracy: number, f1: number, precision: number, recall: number) => ({
  accuracy,
  macro: { precision, recall, f1 },
});

describe('parseGate', () => {
  it("defaults to the original study's targets", () => {
    expect(DEFAULT_GATE).toEqual({ accuracy: 0.6, macroF1: 0.6, macroPrecision: 0.5, macroRecall: 0.5 });
    expect(parseGate(undefined)).toEqual(DEFAULT_GATE);
    expect(parseGate(null)).toEqual(DEFAULT_GATE);
    expect(parseGate({})).toEqual(DEFAULT_GATE);
  });

  it('overrides only the fields given, 0 and 1 included', () => {
    expect(parseGate({ accuracy: 0.8, macroRecall: 0 })).toEqual({
      ...DEFAULT_GATE,
      accuracy: 0.8,
      macroRecall: 0,
    });
    expect(parseGate({ macroF1: 1 }).macroF1).toBe(1);
  });

  it('returns a copy, leaving the defaults alone', () => {
    const g = parseGate(undefined);
    g.accuracy = 0.9;
    expect(DEFAULT_GATE.accuracy).toBe(0.6);
  });

  it.each<[unknown, string]>([
    [{ macroF1: 1.2 }, 'gate.macroF1 must be a number from 0 to 1, got 1.2'],
    [{ accuracy: -0.1 }, 'gate.accuracy must be a number from 0 to 1, got -0.1'],
    [{ macroPrecision: '0.5' }, 'gate.macroPrecision must be a number from 0 to 1, got "0.5"'],
    [{ macroRecall: Number.NaN }, 'gate.macroRecall must be a number from 0 to 1, got NaN'],
    [
      { macroF1Score: 0.5 },
      'gate has no field macroF1Score: its fields are accuracy, macroF1, macroPrecision, macroRecall',
    ],
    [[0.5], 'gate must be an object, got [0.5]'],
    ['0.6', 'gate must be an object, got "0.6"'],
  ])('refuses %j with an InputError naming the field', (value, message) => {
    expect(() => parseGate(value)).toThrow(new InputError(message));
  });
});

describe('evaluateGate', () => {
  it('writes one line per threshold and fails if any fails', () => {
    const g = evaluateGate(metrics(0.812, 0.412, 0.55, 0.5), DEFAULT_GATE);
    expect(g).toEqual({
      passed: false,
      thresholds: DEFAULT_GATE,
      reasons: [
        'accuracy 0.812 ≥ 0.600 ✓',
        'macro F1 0.412 < 0.600 ✗',
        'macro precision 0.550 ≥ 0.500 ✓',
        'macro recall 0.500 ≥ 0.500 ✓',
      ],
    });
  });

  it('passes when every metric reaches its threshold', () => {
    const g = evaluateGate(metrics(0.6, 0.7, 0.9, 0.51), DEFAULT_GATE);
    expect(g.passed).toBe(true);
    expect(g.reasons.every((r) => r.endsWith('✓'))).toBe(true);
  });

  it('prints more digits when three would make a miss look like a pass', () => {
    const g = evaluateGate(metrics(0.9, 0.5996, 0.9, 0.9), DEFAULT_GATE);
    expect(g.passed).toBe(false);
    expect(g.reasons[1]).toBe('macro F1 0.5996 < 0.6000 ✗');
  });

  it("judges computeMetrics' output: the hand-worked example misses the macro F1 target", () => {
    // accuracy 6/10, macro F1 26/45 = 0.578, macro P 53/90 = 0.589, macro R 7/12 = 0.583
    const y = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
    const p = [0, 0, 0, 1, 1, 2, 0, 2, 2, 0];
    const m = computeMetrics(
      y.map((label, i) => ({
        id: `i${i}`,
        label,
        top5: [{ label: p[i]!, probability: 0.9 }],
        trueProbability: 0.5,
      })),
      ['beagle', 'collie', 'pug'].map((name, index) => ({ index, class: name, breed: name })),
    );
    expect(evaluateGate(m, DEFAULT_GATE).reasons).toEqual([
      'accuracy 0.600 ≥ 0.600 ✓',
      'macro F1 0.578 < 0.600 ✗',
      'macro precision 0.589 ≥ 0.500 ✓',
      'macro recall 0.583 ≥ 0.500 ✓',
    ]);
  });
});

describe('comparePromotion', () => {
  const passed = evaluateGate(metrics(0.8, 0.71, 0.7, 0.7), DEFAULT_GATE);
  const failed = evaluateGate(metrics(0.8, 0.412, 0.45, 0.7), DEFAULT_GATE);
  const candidate = (macroF1: number, gate: GateResult = passed) => ({ runId: 'run-2', macroF1, gate });
  const champion = { runId: 'run-1', macroF1: 0.7 };

  it('does not promote a run that failed the gate, saying which thresholds', () => {
    expect(comparePromotion(candidate(0.9, failed), champion)).toEqual({
      promoted: false,
      previousChampion: 'run-1',
      reason: 'not promoted: the gate failed (macro F1 0.412 < 0.600 ✗; macro precision 0.450 < 0.500 ✗)',
    });
    expect(comparePromotion(candidate(0.9, failed), undefined).promoted).toBe(false);
  });

  it('promotes the first run that passes', () => {
    expect(comparePromotion(candidate(0.61), undefined)).toEqual({
      promoted: true,
      reason: 'promoted: the gate passed and there is no champion yet',
    });
  });

  it('promotes a run strictly better than the champion', () => {
    expect(comparePromotion(candidate(0.71), champion)).toEqual({
      promoted: true,
      previousChampion: 'run-1',
      reason: "promoted: macro F1 0.710 beats champion run-1's 0.700",
    });
  });

  it('keeps the champion on a tie or a worse run, with both numbers', () => {
    expect(comparePromotion(candidate(0.7), champion)).toEqual({
      promoted: false,
      previousChampion: 'run-1',
      reason: "not promoted: macro F1 0.700 does not beat champion run-1's 0.700",
    });
    expect(comparePromotion(candidate(0.6999), champion).reason).toBe(
      "not promoted: macro F1 0.6999 does not beat champion run-1's 0.7000",
    );
  });
});
