// Classification metrics of a run's test predictions, for WriteReport. Precision, recall and F1
// follow scikit-learn's precision_recall_fscore_support with `labels` = every class, so the
// numbers match what a data scientist gets from sklearn on the same predictions.

import { DataError } from '../errors.ts';
import type { ClassMetrics, ConfusedPair, MetricsReport, PRF, Prediction } from './types.ts';

export type ComputedMetrics = Pick<
  MetricsReport,
  | 'accuracy'
  | 'top5Accuracy'
  | 'logLoss'
  | 'micro'
  | 'macro'
  | 'weighted'
  | 'perClass'
  | 'confusion'
  | 'mostConfused'
>;

/** A class as labels.json lists it; `index` is its label. */
export type ClassInfo = Pick<ClassMetrics, 'index' | 'class' | 'breed'>;

export interface MetricsOptions {
  /**
   * What a 0/0 precision, recall or F1 scores, as sklearn's `zero_division`: 0 (default, what
   * sklearn's "warn" scores) or 1.
   */
  zeroDivision?: 0 | 1;
  /** How many confused pairs to keep (default 10). */
  mostConfused?: number;
}

/**
 * Floor on the true class's probability in log loss: sklearn's long-standing eps, so one
 * confident miss costs ln(1e15) ≈ 34.5 rather than making the mean Infinity. Only the floor:
 * sklearn's upper clip at 1 − eps would change a term by ~1e-15.
 */
export const LOG_LOSS_EPS = 1e-15;

const DEFAULT_MOST_CONFUSED = 10;

/**
 * Accuracy, top-5 accuracy, log loss, per-class and averaged precision/recall/F1, the confusion
 * matrix and the most confused pairs. The predicted class is `top5[0].label`.
 *
 * Every class counts in the macro average, those without test images too (sklearn with
 * `labels` listing them): such a class has recall 0/0 → `zeroDivision`, and precision 0 if the
 * model ever predicted it. F1 is sklearn's 2·TP / (support + predicted), which equals 2PR/(P+R)
 * and is `zeroDivision` only when the class is neither present nor predicted.
 */
export function computeMetrics(
  predictions: Prediction[],
  classes: ClassInfo[],
  options: MetricsOptions = {},
): ComputedMetrics {
  const zd = options.zeroDivision ?? 0;
  const ordered = checkClasses(classes);
  const n = ordered.length;
  if (predictions.length === 0) {
    throw new DataError('no predictions: cannot compute metrics of an empty test set');
  }

  const confusion = ordered.map(() => new Array<number>(n).fill(0));
  let correct = 0;
  let top5Hits = 0;
  let lossSum = 0;
  for (const p of predictions) {
    checkPrediction(p, n);
    const predicted = p.top5[0]!.label;
    confusion[p.label]![predicted]!++;
    if (predicted === p.label) correct++;
    if (p.top5.slice(0, 5).some((t) => t.label === p.label)) top5Hits++;
    lossSum -= Math.log(Math.max(p.trueProbability, LOG_LOSS_EPS));
  }

  const total = predictions.length;
  const perClass: ClassMetrics[] = ordered.map((c, i) => {
    const tp = confusion[i]![i]!;
    const support = sum(confusion[i]!);
    const predicted = sum(confusion.map((row) => row[i]!));
    // Only the label fields: a caller's class may carry more (wnid) that the report does not.
    return {
      index: c.index,
      class: c.class,
      breed: c.breed,
      ...prf(tp, support, predicted, zd),
      support,
      predicted,
    };
  });

  return {
    accuracy: correct / total,
    top5Accuracy: top5Hits / total,
    logLoss: lossSum / total,
    // Summed over all classes TP = correct and support = predicted = total, so micro P = R = F1 = accuracy.
    micro: prf(correct, total, total, zd),
    macro: average(perClass, () => 1),
    weighted: average(perClass, (c) => c.support),
    perClass,
    confusion,
    mostConfused: mostConfusedPairs(confusion, perClass, options.mostConfused ?? DEFAULT_MOST_CONFUSED),
  };
}

function prf(tp: number, support: number, predicted: number, zd: 0 | 1): PRF {
  return {
    precision: ratio(tp, predicted, zd),
    recall: ratio(tp, support, zd),
    f1: ratio(2 * tp, support + predicted, zd),
  };
}

function ratio(num: number, den: number, zd: 0 | 1): number {
  return den === 0 ? zd : num / den;
}

/** sum(w·x) / sum(w), as numpy's average; total weight is never 0 (there is at least one image). */
function average(perClass: ClassMetrics[], weight: (c: ClassMetrics) => number): PRF {
  const w = sum(perClass.map(weight));
  const mean = (key: keyof PRF) => sum(perClass.map((c) => weight(c) * c[key])) / w;
  return { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') };
}

/** Off-diagonal cells, most images first; ties by rate, then by name so the order is stable. */
function mostConfusedPairs(confusion: number[][], perClass: ClassMetrics[], limit: number): ConfusedPair[] {
  const pairs: ConfusedPair[] = [];
  for (const actual of perClass) {
    for (const predicted of perClass) {
      const count = confusion[actual.index]![predicted.index]!;
      if (actual.index === predicted.index || count === 0) continue;
      pairs.push({ actual: actual.class, predicted: predicted.class, count, rate: count / actual.support });
    }
  }
  return pairs
    .sort(
      (a, b) =>
        b.count - a.count ||
        b.rate - a.rate ||
        compareText(a.actual, b.actual) ||
        compareText(a.predicted, b.predicted),
    )
    .slice(0, limit);
}

/** Code-unit order, as class names are sorted elsewhere (not locale-dependent). */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The classes in index order; the indexes must be exactly 0..n-1. */
function checkClasses(classes: ClassInfo[]): ClassInfo[] {
  if (classes.length === 0) throw new DataError('no classes: cannot compute metrics without labels');
  const ordered = [...classes].sort((a, b) => a.index - b.index);
  ordered.forEach((c, i) => {
    if (c.index !== i) {
      throw new DataError(
        `class indexes must be 0..${classes.length - 1}, each once; found ${c.index} at ${i}`,
      );
    }
  });
  return ordered;
}

function checkPrediction(p: Prediction, n: number): void {
  const isClass = (label: number) => Number.isInteger(label) && label >= 0 && label < n;
  const isProbability = (x: number) => Number.isFinite(x) && x >= 0 && x <= 1;
  const where = `prediction for image ${p.id}`;
  if (!isClass(p.label)) throw new DataError(`${where}: label ${p.label} is not a class index 0..${n - 1}`);
  if (!Array.isArray(p.top5) || p.top5.length === 0) throw new DataError(`${where}: top5 is empty`);
  for (const t of p.top5) {
    if (!isClass(t.label))
      throw new DataError(`${where}: top5 label ${t.label} is not a class index 0..${n - 1}`);
    if (!isProbability(t.probability)) {
      throw new DataError(`${where}: top5 probability ${t.probability} is not a number in [0, 1]`);
    }
  }
  if (!isProbability(p.trueProbability)) {
    throw new DataError(`${where}: trueProbability ${p.trueProbability} is not a number in [0, 1]`);
  }
}

function sum(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}
