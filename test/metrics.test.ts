import { describe, expect, it } from 'vitest';
import { DataError } from '../src/errors.ts';
import { type ClassInfo, computeMetrics, LOG_LOSS_EPS } from '../src/metrics/compute.ts';
import type { PRF, Prediction } from '../src/metrics/types.ts';

const classesOf = (names: string[]): ClassInfo[] =>
  names.map((name, index) => ({ index, class: name, breed: name.toUpperCase() }));

let nextId = 0;

/** A prediction whose top-1 is `predicted`, followed by `rest` (the other top-5 labels). */
function pred(label: number, predicted: number, opts: { rest?: number[]; p?: number } = {}): Prediction {
  const top5 = [predicted, ...(opts.rest ?? [])].map((l, i) => ({ label: l, probability: 0.5 / (i + 1) }));
  return { id: `img-${nextId++}`, label, top5, trueProbability: opts.p ?? 0.5 };
}

/** sklearn-style y_true / y_pred vectors as predictions. */
const fromLabels = (yTrue: number[], yPred: number[]): Prediction[] =>
  yTrue.map((t, i) => pred(t, yPred[i]!));

function expectPRF(actual: PRF, expected: PRF): void {
  expect(actual.precision).toBeCloseTo(expected.precision, 12);
  expect(actual.recall).toBeCloseTo(expected.recall, 12);
  expect(actual.f1).toBeCloseTo(expected.f1, 12);
}

const column = (perClass: PRF[], key: keyof PRF) => perClass.map((c) => c[key]);

describe('computeMetrics: a 3-class example worked out by hand', () => {
  // 10 images of beagle (0), collie (1), pug (2); rows are the true class, columns the prediction:
  //
  //            beagle collie pug | support
  //   beagle      3      1     0  |   4
  //   collie      1      1     1  |   3
  //   pug         1      0     2  |   3
  //   predicted   5      2     3
  //
  // beagle: P = 3/5, R = 3/4, F1 = 2·3/(4+5) = 2/3   (= 2PR/(P+R) = 0.9/1.35)
  // collie: P = 1/2, R = 1/3, F1 = 2·1/(3+2) = 2/5
  // pug:    P = 2/3, R = 2/3, F1 = 2·2/(3+3) = 2/3
  // accuracy = micro P/R/F1 = 6/10
  // macro:    P = (3/5 + 1/2 + 2/3)/3 = 53/90, R = (3/4 + 1/3 + 2/3)/3 = 7/12, F1 = (2/3 + 2/5 + 2/3)/3 = 26/45
  // weighted: P = (4·3/5 + 3·1/2 + 3·2/3)/10 = 0.59, R = 6/10, F1 = (4·2/3 + 3·2/5 + 3·2/3)/10 = 44/75
  const predictions = fromLabels([0, 0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 0, 0, 1, 1, 2, 0, 2, 2, 0]);
  const m = computeMetrics(predictions, classesOf(['beagle', 'collie', 'pug']));

  it('counts the confusion matrix as [actual][predicted]', () => {
    expect(m.confusion).toEqual([
      [3, 1, 0],
      [1, 1, 1],
      [1, 0, 2],
    ]);
  });

  it('gives each class its precision, recall, F1, support and predicted count', () => {
    expect(m.perClass.map((c) => [c.index, c.class, c.breed, c.support, c.predicted])).toEqual([
      [0, 'beagle', 'BEAGLE', 4, 5],
      [1, 'collie', 'COLLIE', 3, 2],
      [2, 'pug', 'PUG', 3, 3],
    ]);
    expectPRF(m.perClass[0]!, { precision: 3 / 5, recall: 3 / 4, f1: 2 / 3 });
    expectPRF(m.perClass[1]!, { precision: 1 / 2, recall: 1 / 3, f1: 2 / 5 });
    expectPRF(m.perClass[2]!, { precision: 2 / 3, recall: 2 / 3, f1: 2 / 3 });
  });

  it('averages them micro, macro and weighted', () => {
    expect(m.accuracy).toBe(0.6);
    expectPRF(m.micro, { precision: 0.6, recall: 0.6, f1: 0.6 });
    expectPRF(m.macro, { precision: 53 / 90, recall: 7 / 12, f1: 26 / 45 });
    expectPRF(m.weighted, { precision: 0.59, recall: 0.6, f1: 44 / 75 });
  });

  it('takes macro F1 as the mean of per-class F1, not the F1 of macro P and R', () => {
    const fOfMeans = (2 * (53 / 90) * (7 / 12)) / (53 / 90 + 7 / 12);
    expect(Math.abs(m.macro.f1 - fOfMeans)).toBeGreaterThan(1e-3);
  });

  it('lists the confused pairs: equal counts by rate, then by actual and predicted name', () => {
    expect(m.mostConfused).toEqual([
      { actual: 'collie', predicted: 'beagle', count: 1, rate: 1 / 3 },
      { actual: 'collie', predicted: 'pug', count: 1, rate: 1 / 3 },
      { actual: 'pug', predicted: 'beagle', count: 1, rate: 1 / 3 },
      { actual: 'beagle', predicted: 'collie', count: 1, rate: 1 / 4 },
    ]);
  });

  it('orders the classes by index whatever order they are given in', () => {
    const shuffled = classesOf(['beagle', 'collie', 'pug']).reverse();
    expect(computeMetrics(predictions, shuffled)).toEqual(m);
  });
});

describe('computeMetrics reproduces scikit-learn', () => {
  // The precision_recall_fscore_support / f1_score / precision_score / recall_score docstrings.
  const yTrue = [0, 1, 2, 0, 1, 2];
  const yPred = [0, 2, 1, 0, 0, 1];
  const m = computeMetrics(fromLabels(yTrue, yPred), classesOf(['cat', 'dog', 'pig']));

  it('average="macro": (0.22…, 0.33…, 0.26…)', () => {
    expectPRF(m.macro, { precision: 2 / 9, recall: 1 / 3, f1: 4 / 15 });
  });

  it('average="micro": (0.33…, 0.33…, 0.33…)', () => {
    expectPRF(m.micro, { precision: 1 / 3, recall: 1 / 3, f1: 1 / 3 });
  });

  it('average="weighted": (0.22…, 0.33…, 0.26…)', () => {
    expectPRF(m.weighted, { precision: 2 / 9, recall: 1 / 3, f1: 4 / 15 });
  });

  it("average=None, labels=['pig', 'dog', 'cat']: P [0, 0, 0.66…], R [0, 0, 1], F1 [0, 0, 0.8], support [2, 2, 2]", () => {
    const byName = ['pig', 'dog', 'cat'].map((name) => m.perClass.find((c) => c.class === name)!);
    expect(column(byName, 'precision')).toEqual([0, 0, 2 / 3]);
    expect(column(byName, 'recall')).toEqual([0, 0, 1]);
    expect(column(byName, 'f1')).toEqual([0, 0, 0.8]);
    expect(byName.map((c) => c.support)).toEqual([2, 2, 2]);
  });

  it('precision_score with y_pred all 0: [0.33…, 0, 0], and [0.33…, 1, 1] with zero_division=1', () => {
    const allZero = fromLabels(yTrue, [0, 0, 0, 0, 0, 0]);
    const warn = computeMetrics(allZero, classesOf(['a', 'b', 'c']));
    const one = computeMetrics(allZero, classesOf(['a', 'b', 'c']), { zeroDivision: 1 });
    expect(column(warn.perClass, 'precision')).toEqual([1 / 3, 0, 0]);
    expect(column(one.perClass, 'precision')).toEqual([1 / 3, 1, 1]);
    // Recall and F1 are defined (support 2 each), so zero_division does not touch them.
    for (const r of [warn, one]) {
      expect(column(r.perClass, 'recall')).toEqual([1, 0, 0]);
      expect(column(r.perClass, 'f1')).toEqual([0.5, 0, 0]);
    }
    expect(warn.macro.precision).toBeCloseTo(1 / 9, 12);
    expect(one.macro.precision).toBeCloseTo(7 / 9, 12);
  });

  it('recall_score with y_true all 0: [0.5, 0, 0], and [0.5, 1, 1] with zero_division=1', () => {
    // Classes 1 and 2 have no support but are still averaged into macro, as with sklearn's `labels`.
    const noSupport = fromLabels([0, 0, 0, 0, 0, 0], yPred);
    const warn = computeMetrics(noSupport, classesOf(['a', 'b', 'c']));
    const one = computeMetrics(noSupport, classesOf(['a', 'b', 'c']), { zeroDivision: 1 });
    expect(column(warn.perClass, 'recall')).toEqual([0.5, 0, 0]);
    expect(column(one.perClass, 'recall')).toEqual([0.5, 1, 1]);
    for (const r of [warn, one]) {
      expect(column(r.perClass, 'precision')).toEqual([1, 0, 0]);
      expect(column(r.perClass, 'f1')).toEqual([2 / 3, 0, 0]);
      // Support-weighted: the classes without support weigh nothing.
      expectPRF(r.weighted, { precision: 1, recall: 0.5, f1: 2 / 3 });
    }
    expectPRF(warn.macro, { precision: 1 / 3, recall: 1 / 6, f1: 2 / 9 });
    expectPRF(one.macro, { precision: 1 / 3, recall: 5 / 6, f1: 2 / 9 });
  });

  it('f1_score with y_true = y_pred = all 0: class 1 scores 0, or 1 with zero_division=1', () => {
    const allZero = fromLabels([0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]);
    const warn = computeMetrics(allZero, classesOf(['neg', 'pos']));
    const one = computeMetrics(allZero, classesOf(['neg', 'pos']), { zeroDivision: 1 });
    expect(warn.perClass[1]).toMatchObject({ precision: 0, recall: 0, f1: 0 });
    expect(one.perClass[1]).toMatchObject({ precision: 1, recall: 1, f1: 1 });
    expectPRF(warn.macro, { precision: 0.5, recall: 0.5, f1: 0.5 });
    expectPRF(one.macro, { precision: 1, recall: 1, f1: 1 });
  });

  it('classification_report: y_true [0, 1, 2, 2, 2], y_pred [0, 0, 2, 2, 1]', () => {
    const r = computeMetrics(fromLabels([0, 1, 2, 2, 2], [0, 0, 2, 2, 1]), classesOf(['c0', 'c1', 'c2']));
    expect(column(r.perClass, 'precision')).toEqual([0.5, 0, 1]);
    expect(column(r.perClass, 'recall')).toEqual([1, 0, 2 / 3]);
    expect(column(r.perClass, 'f1')).toEqual([2 / 3, 0, 0.8]);
    expect(r.accuracy).toBe(0.6);
    // Printed as macro 0.50 0.56 0.49 and weighted 0.70 0.60 0.61.
    expectPRF(r.macro, { precision: 0.5, recall: 5 / 9, f1: 22 / 45 });
    expectPRF(r.weighted, { precision: 0.7, recall: 0.6, f1: 46 / 75 });
  });

  it('confusion_matrix: y_true [2, 0, 2, 2, 0, 1], y_pred [0, 0, 2, 2, 0, 2]', () => {
    const r = computeMetrics(
      fromLabels([2, 0, 2, 2, 0, 1], [0, 0, 2, 2, 0, 2]),
      classesOf(['ant', 'bird', 'cat']),
    );
    expect(r.confusion).toEqual([
      [2, 0, 0],
      [0, 0, 1],
      [1, 0, 2],
    ]);
  });
});

describe('computeMetrics with zero divisions', () => {
  it('scores 0 everywhere when every prediction is wrong, with either zero_division', () => {
    for (const zeroDivision of [0, 1] as const) {
      const r = computeMetrics(fromLabels([0, 0, 1, 1], [1, 1, 0, 0]), classesOf(['a', 'b']), {
        zeroDivision,
      });
      expect(r.accuracy).toBe(0);
      for (const prf of [r.micro, r.macro, r.weighted, ...r.perClass]) {
        expect(prf).toMatchObject({ precision: 0, recall: 0, f1: 0 });
      }
    }
  });

  it('gives a class never predicted precision 0 (or 1), recall and F1 0', () => {
    const preds = fromLabels([0, 1, 2, 2], [0, 1, 1, 1]);
    const warn = computeMetrics(preds, classesOf(['a', 'b', 'c']));
    const one = computeMetrics(preds, classesOf(['a', 'b', 'c']), { zeroDivision: 1 });
    expect(warn.perClass[2]).toMatchObject({ support: 2, predicted: 0, precision: 0, recall: 0, f1: 0 });
    expect(one.perClass[2]).toMatchObject({ support: 2, predicted: 0, precision: 1, recall: 0, f1: 0 });
  });

  it('averages a class neither present nor predicted into macro as zero_division', () => {
    // a and b are all wrong; c has no images and no predictions: 0/0 for P, R and F1.
    const preds = fromLabels([0, 1], [1, 0]);
    const warn = computeMetrics(preds, classesOf(['a', 'b', 'c']));
    const one = computeMetrics(preds, classesOf(['a', 'b', 'c']), { zeroDivision: 1 });
    expectPRF(warn.macro, { precision: 0, recall: 0, f1: 0 });
    expectPRF(one.macro, { precision: 1 / 3, recall: 1 / 3, f1: 1 / 3 });
    expectPRF(one.weighted, { precision: 0, recall: 0, f1: 0 });
  });
});

describe('computeMetrics: identities on random predictions', () => {
  it('F1 = 2PR/(P+R), micro = accuracy = weighted recall, rows sum to support', () => {
    let seed = 42;
    const rand = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % k;
    };
    const n = 7;
    const preds = Array.from({ length: 300 }, () => {
      const label = rand(n);
      return pred(label, rand(3) === 0 ? label : rand(n));
    });
    const r = computeMetrics(preds, classesOf(['a', 'b', 'c', 'd', 'e', 'f', 'g']));
    for (const c of r.perClass) {
      const pr = c.precision + c.recall;
      expect(c.f1).toBeCloseTo(pr === 0 ? 0 : (2 * c.precision * c.recall) / pr, 12);
      expect(c.support).toBe(preds.filter((p) => p.label === c.index).length);
      expect(c.predicted).toBe(preds.filter((p) => p.top5[0]!.label === c.index).length);
    }
    expectPRF(r.micro, { precision: r.accuracy, recall: r.accuracy, f1: r.accuracy });
    expect(r.weighted.recall).toBeCloseTo(r.accuracy, 12);
    expect(r.confusion.flat().reduce((a, b) => a + b)).toBe(300);
  });
});

describe('computeMetrics: top-5 accuracy and log loss', () => {
  const seven = classesOf(['a', 'b', 'c', 'd', 'e', 'f', 'g']);

  it('counts the true label anywhere in the first five entries', () => {
    const r = computeMetrics(
      [
        pred(0, 0, { rest: [1, 2, 3, 4] }), // top-1 hit
        pred(4, 0, { rest: [1, 2, 3, 4] }), // 5th
        pred(6, 0, { rest: [1, 2, 3, 4] }), // missing
        pred(5, 0, { rest: [1, 2, 3, 4, 5] }), // a 6th entry is not top-5
      ],
      seven,
    );
    expect(r.accuracy).toBe(1 / 4);
    expect(r.top5Accuracy).toBe(2 / 4);
  });

  it('uses what is given when there are fewer than five classes', () => {
    const r = computeMetrics(
      [pred(2, 0, { rest: [1, 2] }), pred(1, 0, { rest: [2] })],
      classesOf(['a', 'b', 'c']),
    );
    expect(r.top5Accuracy).toBe(1 / 2);
  });

  it('is the mean of −ln p(true), with p floored at 1e-15', () => {
    const r = computeMetrics(
      [pred(0, 0, { p: 1 }), pred(0, 0, { p: 0.5 }), pred(1, 0, { p: 0.25 }), pred(1, 0, { p: 0 })],
      classesOf(['a', 'b']),
    );
    expect(LOG_LOSS_EPS).toBe(1e-15);
    expect(r.logLoss).toBeCloseTo((Math.log(2) + Math.log(4) + 15 * Math.log(10)) / 4, 12);
  });

  it('takes the true probability from trueProbability, not from top5', () => {
    const r = computeMetrics([pred(6, 0, { rest: [1, 2, 3, 4], p: 0.01 })], seven);
    expect(r.logLoss).toBeCloseTo(-Math.log(0.01), 12);
  });
});

describe('computeMetrics: most confused pairs', () => {
  it('orders by count first, then rate, and keeps the top N', () => {
    // a→b 3 of 10 (0.3), b→c 2 of 2 (1.0), c→a 2 of 4 (0.5), a→c 1 of 10 (0.1)
    const preds = fromLabels(
      [...Array(10).fill(0), 1, 1, 2, 2, 2, 2],
      [1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 2, 2, 0, 0, 2, 2],
    );
    const classes = classesOf(['a', 'b', 'c']);
    expect(computeMetrics(preds, classes).mostConfused).toEqual([
      { actual: 'a', predicted: 'b', count: 3, rate: 0.3 },
      { actual: 'b', predicted: 'c', count: 2, rate: 1 },
      { actual: 'c', predicted: 'a', count: 2, rate: 0.5 },
      { actual: 'a', predicted: 'c', count: 1, rate: 0.1 },
    ]);
    expect(computeMetrics(preds, classes, { mostConfused: 2 }).mostConfused.map((p) => p.count)).toEqual([
      3, 2,
    ]);
  });

  it('keeps 10 by default, names breaking ties, and none when all is right', () => {
    // Every class taken once for each other class: 20 pairs of count 1 and rate 1/4.
    const names = ['e', 'd', 'c', 'b', 'a'];
    const preds = names.flatMap((_, t) =>
      names
        .map((_, p) => p)
        .filter((p) => p !== t)
        .map((p) => pred(t, p)),
    );
    const r = computeMetrics(preds, classesOf(names));
    expect(r.mostConfused).toHaveLength(10);
    expect(r.mostConfused.slice(0, 5).map((p) => `${p.actual}→${p.predicted}`)).toEqual([
      'a→b',
      'a→c',
      'a→d',
      'a→e',
      'b→a',
    ]);
    expect(computeMetrics(fromLabels([0, 1], [0, 1]), classesOf(['a', 'b'])).mostConfused).toEqual([]);
  });
});

describe('computeMetrics: input validation', () => {
  const three = classesOf(['a', 'b', 'c']);
  const bad = (patch: Partial<Prediction>): Prediction => ({
    ...pred(0, 0, { rest: [1] }),
    id: 'dog-17',
    ...patch,
  });
  const errorOf = (f: () => unknown): Error => {
    try {
      f();
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected a throw');
  };

  it('refuses an empty prediction list', () => {
    const err = errorOf(() => computeMetrics([], three));
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(/no predictions/);
  });

  it.each<[string, Partial<Prediction>, RegExp]>([
    ['a label past the last class', { label: 3 }, /image dog-17: label 3 is not a class index 0\.\.2/],
    ['a negative label', { label: -1 }, /image dog-17: label -1 /],
    ['a fractional label', { label: 0.5 }, /image dog-17: label 0\.5 /],
    ['an empty top5', { top5: [] }, /image dog-17: top5 is empty/],
    ['a top5 label out of range', { top5: [{ label: 7, probability: 0.9 }] }, /image dog-17: top5 label 7 /],
    [
      'a NaN probability',
      { top5: [{ label: 0, probability: Number.NaN }] },
      /image dog-17: top5 probability NaN/,
    ],
    [
      'a probability above 1',
      { top5: [{ label: 0, probability: 1.2 }] },
      /image dog-17: top5 probability 1\.2/,
    ],
    ['a negative true probability', { trueProbability: -0.1 }, /image dog-17: trueProbability -0\.1/],
    ['an infinite true probability', { trueProbability: Infinity }, /image dog-17: trueProbability Infinity/],
  ])('refuses %s, naming the image', (_, patch, message) => {
    const err = errorOf(() => computeMetrics([pred(1, 1), bad(patch)], three));
    expect(err).toBeInstanceOf(DataError);
    expect(err.name).toBe('DataError');
    expect(err.message).toMatch(message);
  });

  it('refuses classes whose indexes are not 0..n-1', () => {
    const gap = [...classesOf(['a', 'b']), { index: 3, class: 'd', breed: 'D' }];
    expect(() => computeMetrics([pred(0, 0)], gap)).toThrow(DataError);
    expect(() => computeMetrics([pred(0, 0)], [...three, three[0]!])).toThrow(/each once/);
    expect(() => computeMetrics([pred(0, 0)], [])).toThrow(DataError);
  });
});
