// The quality gate a run must pass before it may replace the champion model, and the promotion
// decision itself. Reasons are written for people reading the report, so they carry the numbers.

import type * as z from 'zod';
import { number, record } from '../schema/fields.ts';
import { parseInput } from '../schema/parse.ts';
import type { GateResult, MetricsReport, Promotion } from './types.ts';

/** The original study's targets. */
export const DEFAULT_GATE = Object.freeze({
  accuracy: 0.6,
  macroF1: 0.6,
  macroPrecision: 0.5,
  macroRecall: 0.5,
});

const threshold = number(0, 1);

/**
 * Thresholds from configuration or an event: any subset of the fields, each in [0, 1]; the rest
 * keep their defaults. Unknown fields are refused so a typo cannot silently weaken the gate.
 */
export const GateSchema = record({
  accuracy: threshold.default(DEFAULT_GATE.accuracy),
  macroF1: threshold.default(DEFAULT_GATE.macroF1),
  macroPrecision: threshold.default(DEFAULT_GATE.macroPrecision),
  macroRecall: threshold.default(DEFAULT_GATE.macroRecall),
});

export type GateThresholds = z.output<typeof GateSchema>;

const PASS = '✓';
const FAIL = '✗';

/** The gate of a configuration; none (or null) is the defaults. */
export function parseGate(value: unknown): GateThresholds {
  return parseInput(GateSchema, value ?? {}, { name: 'gate' });
}

/** One reason line per threshold; passed only when the metric reaches every threshold. */
export function evaluateGate(
  metrics: Pick<MetricsReport, 'accuracy' | 'macro'>,
  thresholds: GateThresholds,
): GateResult {
  const checks: [string, number, number][] = [
    ['accuracy', metrics.accuracy, thresholds.accuracy],
    ['macro F1', metrics.macro.f1, thresholds.macroF1],
    ['macro precision', metrics.macro.precision, thresholds.macroPrecision],
    ['macro recall', metrics.macro.recall, thresholds.macroRecall],
  ];
  const reasons = checks.map(([name, value, min]) => {
    const [v, t] = formatPair(value, min);
    return value >= min ? `${name} ${v} ≥ ${t} ${PASS}` : `${name} ${v} < ${t} ${FAIL}`;
  });
  return { passed: checks.every(([, value, min]) => value >= min), thresholds: { ...thresholds }, reasons };
}

/**
 * Promote when the gate passed and there is no champion or the candidate's macro F1 is strictly
 * higher (a tie keeps the champion: replacing it would gain nothing).
 */
export function comparePromotion(
  candidate: { runId: string; macroF1: number; gate: GateResult },
  champion: { runId: string; macroF1: number } | undefined,
): Promotion {
  const previous = champion ? { previousChampion: champion.runId } : {};
  if (!candidate.gate.passed) {
    const failed = candidate.gate.reasons.filter((r) => r.endsWith(FAIL));
    return { promoted: false, ...previous, reason: `not promoted: the gate failed (${failed.join('; ')})` };
  }
  if (!champion) {
    return { promoted: true, reason: 'promoted: the gate passed and there is no champion yet' };
  }
  const [cand, champ] = formatPair(candidate.macroF1, champion.macroF1);
  if (candidate.macroF1 > champion.macroF1) {
    return {
      promoted: true,
      ...previous,
      reason: `promoted: macro F1 ${cand} beats champion ${champion.runId}'s ${champ}`,
    };
  }
  return {
    promoted: false,
    ...previous,
    reason: `not promoted: macro F1 ${cand} does not beat champion ${champion.runId}'s ${champ}`,
  };
}

/** Three decimals, or as many more as it takes for two different numbers not to print alike. */
function formatPair(a: number, b: number): [string, string] {
  for (let digits = 3; digits < 17; digits++) {
    const pair: [string, string] = [a.toFixed(digits), b.toFixed(digits)];
    if (a === b || pair[0] !== pair[1]) return pair;
  }
  return [String(a), String(b)];
}
