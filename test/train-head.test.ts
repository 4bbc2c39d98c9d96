import { beforeAll, describe, expect, it } from 'vitest';
import { DataError, InputError } from '../src/errors.ts';
import { loadTf, type Tf } from '../src/model/tf-backend.ts';
import {
  type EpochLog,
  type HeadTrainingData,
  type HeadTrainingOptions,
  type LabelledFeatures,
  MissingClassError,
  trainHead,
} from '../src/model/train-head.ts';
import type { HeadWeights } from '../src/model/types.ts';
import { mulberry32 } from '../src/util/prng.ts';

// Trains on seeded synthetic features (Gaussian clusters) with the wasm backend, and checks
// the returned weights with a plain-JS forward pass rather than trusting the trainer's logs.

const CLASSES = 10;
const DIM = 64;
const BASE: HeadTrainingOptions = {
  hidden: 0,
  dropout: 0,
  learningRate: 0.01,
  weightDecay: 0,
  labelSmoothing: 0,
  batchSize: 32,
  epochs: 30,
  patience: 5,
  seed: 1,
};

function gauss(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Points around class centers; `flip` is the share of labels replaced by a random class. */
function sample(centers: Float64Array, perClass: number, noise: number, rand: () => number, flip = 0) {
  const n = CLASSES * perClass;
  const features = new Float32Array(n * DIM);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % CLASSES;
    labels[i] = rand() < flip ? Math.floor(rand() * CLASSES) : c;
    for (let d = 0; d < DIM; d++) features[i * DIM + d] = centers[c * DIM + d]! + noise * gauss(rand);
  }
  return { features, labels };
}

function clusters(opts: { perClass: number; noise: number; seed: number; flip?: number }) {
  const rand = mulberry32(opts.seed);
  const centers = new Float64Array(CLASSES * DIM).map(() => gauss(rand));
  const data: HeadTrainingData = {
    train: sample(centers, opts.perClass, opts.noise, rand, opts.flip),
    val: sample(centers, 20, opts.noise, rand),
    featureDim: DIM,
    classes: CLASSES,
  };
  return { data, centers };
}

/** A nearest-center classifier written as a linear head: x·c − |c|²/2, scaled. */
function centroidInit(centers: Float64Array, scale = 1) {
  const weights = new Float32Array(DIM * CLASSES);
  const bias = new Float32Array(CLASSES);
  for (let c = 0; c < CLASSES; c++) {
    let norm = 0;
    for (let d = 0; d < DIM; d++) {
      const v = centers[c * DIM + d]!;
      weights[d * CLASSES + c] = v * scale;
      norm += v * v;
    }
    bias[c] = (-norm / 2) * scale;
  }
  return { weights, bias };
}

/** Plain-JS forward pass of a HeadWeights (row-major [in × out], ReLU between layers). */
function logits(head: HeadWeights, features: Float32Array, row: number): Float64Array {
  let h: ArrayLike<number> = features.subarray(row * head.inputDim, (row + 1) * head.inputDim);
  head.layers.forEach((layer, i) => {
    const out = Float64Array.from(layer.bias);
    for (let k = 0; k < layer.inDim; k++) {
      const x = h[k]!;
      for (let j = 0; j < layer.outDim; j++) out[j]! += x * layer.weights[k * layer.outDim + j]!;
    }
    if (i < head.layers.length - 1) for (let j = 0; j < out.length; j++) out[j] = Math.max(0, out[j]!);
    h = out;
  });
  return h as Float64Array;
}

function accuracy(head: HeadWeights, split: LabelledFeatures): number {
  let correct = 0;
  for (let i = 0; i < split.labels.length; i++) {
    const z = logits(head, split.features, i);
    if (z.indexOf(Math.max(...z)) === split.labels[i]) correct++;
  }
  return correct / split.labels.length;
}

/** Mean cross-entropy against (1 − s)·onehot + s/classes. */
function crossEntropy(head: HeadWeights, split: LabelledFeatures, smoothing: number): number {
  let total = 0;
  for (let i = 0; i < split.labels.length; i++) {
    const z = logits(head, split.features, i);
    const max = Math.max(...z);
    const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    z.forEach((v, c) => {
      total += ((c === split.labels[i] ? 1 - smoothing : 0) + smoothing / CLASSES) * (lse - v);
    });
  }
  return total / split.labels.length;
}

function linearHead(init: { weights: Float32Array; bias: Float32Array }): HeadWeights {
  return { inputDim: DIM, classes: CLASSES, layers: [{ ...init, inDim: DIM, outDim: CLASSES }] };
}

let tf: Tf;
beforeAll(async () => {
  const loaded = await loadTf('wasm');
  expect(loaded.backend).toBe('wasm');
  tf = loaded.tf;
});

describe('trainHead on separable clusters', () => {
  const { data } = clusters({ perClass: 30, noise: 1.5, seed: 7 });

  it('trains a linear head to ≥ 0.95 validation accuracy and returns the best epoch', async () => {
    const seen: EpochLog[] = [];
    const result = await trainHead(data, { ...BASE, onEpoch: (e) => seen.push(e) }, tf);
    expect(result.backend).toBe('wasm');
    expect(seen).toEqual(result.epochs);
    expect(result.epochs.map((e) => e.epoch)).toEqual(result.epochs.map((_, i) => i + 1));
    expect(result.head.layers.map((l) => [l.inDim, l.outDim])).toEqual([[DIM, CLASSES]]);
    const best = result.epochs[result.bestEpoch - 1]!;
    expect(accuracy(result.head, data.val)).toBe(best.valAccuracy);
    expect(best.valAccuracy).toBe(Math.max(...result.epochs.map((e) => e.valAccuracy)));
    expect(best.valAccuracy).toBeGreaterThanOrEqual(0.95);
    expect(result.epochs[0]!.trainLoss).toBeGreaterThan(result.epochs.at(-1)!.trainLoss);
  });

  it('trains a hidden-layer head with dropout to ≥ 0.95', async () => {
    const result = await trainHead(data, { ...BASE, hidden: 32, dropout: 0.2, weightDecay: 1e-3 }, tf);
    expect(result.head.layers.map((l) => [l.inDim, l.outDim])).toEqual([
      [DIM, 32],
      [32, CLASSES],
    ]);
    const acc = accuracy(result.head, data.val);
    expect(acc).toBe(result.epochs[result.bestEpoch - 1]!.valAccuracy);
    expect(acc).toBeGreaterThanOrEqual(0.95);
  });

  it('is deterministic for a seed, and the seed matters', async () => {
    const opts = { ...BASE, hidden: 16, dropout: 0.3, weightDecay: 1e-3, labelSmoothing: 0.1, epochs: 4 };
    const [a, b, c] = [
      await trainHead(data, opts, tf),
      await trainHead(data, opts, tf),
      await trainHead(data, { ...opts, seed: 2 }, tf),
    ];
    expect(b.head).toEqual(a.head);
    const withoutTime = (r: typeof a) => r.epochs.map(({ seconds: _, ...rest }) => rest);
    expect(withoutTime(b)).toEqual(withoutTime(a));
    expect(c.head.layers[0]!.weights).not.toEqual(a.head.layers[0]!.weights);
  });

  it('keeps memory flat across epochs and frees everything at the end', async () => {
    const before = tf.memory();
    const perEpoch: [number, number][] = [];
    const opts = { ...BASE, hidden: 16, dropout: 0.3, weightDecay: 1e-3, labelSmoothing: 0.1, epochs: 5 };
    await trainHead(
      data,
      { ...opts, onEpoch: () => perEpoch.push([tf.memory().numTensors, tf.memory().numBytes]) },
      tf,
    );
    expect(perEpoch).toHaveLength(5);
    for (const m of perEpoch) expect(m).toEqual(perEpoch[0]);
    expect([tf.memory().numTensors, tf.memory().numBytes]).toEqual([before.numTensors, before.numBytes]);
  });
});

describe('early stopping', () => {
  // Few examples per class with 40% random labels: the head first learns the clusters, then
  // memorises the wrong labels and validation accuracy falls (0.715 at epoch 2, ~0.55 after).
  const { data } = clusters({ perClass: 6, noise: 1.5, seed: 7, flip: 0.4 });

  it('stops after `patience` epochs without improvement and returns the best epoch’s weights', async () => {
    const result = await trainHead(data, { ...BASE, learningRate: 0.05, batchSize: 8, patience: 2 }, tf);
    expect(result.stoppedEarly).toBe(true);
    expect(result.epochs).toHaveLength(result.bestEpoch + 2);
    const best = result.epochs[result.bestEpoch - 1]!;
    const last = result.epochs.at(-1)!;
    expect(best.valAccuracy).toBeGreaterThan(last.valAccuracy + 0.05);
    expect(accuracy(result.head, data.val)).toBe(best.valAccuracy);
  });

  it('does not report an early stop when the last epoch is reached', async () => {
    const result = await trainHead(
      data,
      { ...BASE, learningRate: 0.05, batchSize: 8, epochs: 3, patience: 2 },
      tf,
    );
    expect(result.epochs).toHaveLength(3);
    expect(result.stoppedEarly).toBe(false);
  });
});

describe('init', () => {
  const { data, centers } = clusters({ perClass: 30, noise: 1.5, seed: 7 });
  const init = centroidInit(centers);

  it('returns the init unchanged when no epoch is trained', async () => {
    const result = await trainHead(data, { ...BASE, epochs: 0, init }, tf);
    expect(result.bestEpoch).toBe(0);
    expect(result.epochs).toEqual([]);
    expect(result.head).toEqual(linearHead(init));
    expect(result.head.layers[0]!.weights).not.toBe(init.weights);
  });

  it('starts from the init: a tiny learning rate leaves it in place, a good init is good at epoch 1', async () => {
    const still = await trainHead(data, { ...BASE, epochs: 1, learningRate: 1e-9, init }, tf);
    const moved = still.head.layers[0]!.weights.map((w, i) => Math.abs(w - init.weights[i]!));
    expect(Math.max(...moved)).toBeLessThan(1e-6);
    const fromInit = await trainHead(data, { ...BASE, epochs: 1, init }, tf);
    const fromRandom = await trainHead(data, { ...BASE, epochs: 1 }, tf);
    expect(fromInit.epochs[0]!.valAccuracy).toBeGreaterThanOrEqual(0.95);
    expect(fromRandom.epochs[0]!.valAccuracy).toBeLessThan(0.8);
  });
});

describe('loss', () => {
  const { data, centers } = clusters({ perClass: 30, noise: 1.5, seed: 7 });
  // Scaled down so the logits are not saturated and both losses are far from zero.
  const init = centroidInit(centers, 0.05);

  it('is cross-entropy on logits with label smoothing on the train loss only', async () => {
    const opts = { ...BASE, epochs: 1, learningRate: 1e-9, init };
    const plain = await trainHead(data, opts, tf);
    const smoothed = await trainHead(data, { ...opts, labelSmoothing: 0.3 }, tf);
    const head = linearHead(init);
    expect(plain.epochs[0]!.trainLoss).toBeCloseTo(crossEntropy(head, data.train, 0), 4);
    expect(smoothed.epochs[0]!.trainLoss).toBeCloseTo(crossEntropy(head, data.train, 0.3), 4);
    expect(Math.abs(smoothed.epochs[0]!.trainLoss - plain.epochs[0]!.trainLoss)).toBeGreaterThan(0.05);
    expect(plain.epochs[0]!.valLoss).toBeCloseTo(crossEntropy(head, data.val, 0), 4);
    expect(smoothed.epochs[0]!.valLoss).toBeCloseTo(plain.epochs[0]!.valLoss, 5);
  });

  it('stays finite on huge logits (computed stably from logits, not probabilities)', async () => {
    // Each class gets the next class's center: every example is wrong by a logit gap of ~1e5,
    // where a softmax-then-log would take log(0).
    const shifted = new Float64Array(centers.length);
    shifted.set(centers.subarray(DIM));
    shifted.set(centers.subarray(0, DIM), centers.length - DIM);
    const huge = centroidInit(shifted, 1e4);
    const result = await trainHead(data, { ...BASE, epochs: 1, learningRate: 1e-9, init: huge }, tf);
    expect(Number.isFinite(result.epochs[0]!.trainLoss)).toBe(true);
    const expected = crossEntropy(linearHead(huge), data.val, 0);
    expect(expected).toBeGreaterThan(1e4);
    expect(Math.abs(result.epochs[0]!.valLoss - expected) / expected).toBeLessThan(1e-3);
  });
});

describe('weight decay', () => {
  const { data, centers } = clusters({ perClass: 30, noise: 1.5, seed: 7 });
  const init = centroidInit(centers);

  it('is decoupled (AdamW): one step scales kernels by 1 − lr·wd and leaves biases alone', async () => {
    // One full batch = one step. Adam's own first step moves a weight by at most ~lr, so with
    // lr·wd = 0.5 the kernels halve; an L2 term in the loss would be normalised away by Adam.
    const lr = 1e-4;
    const opts = {
      ...BASE,
      epochs: 1,
      batchSize: data.train.labels.length,
      learningRate: lr,
      weightDecay: 5000,
      init,
    };
    const { head } = await trainHead(data, opts, tf);
    const layer = head.layers[0]!;
    const kernelGap = layer.weights.map((w, i) => Math.abs(w - 0.5 * init.weights[i]!));
    const biasGap = layer.bias.map((b, i) => Math.abs(b - init.bias[i]!));
    expect(Math.max(...kernelGap)).toBeLessThan(1.01 * lr);
    expect(Math.max(...biasGap)).toBeLessThan(1.01 * lr);
  });
});

describe('validation', () => {
  const { data } = clusters({ perClass: 3, noise: 1, seed: 3 });

  async function failure(run: Promise<unknown>): Promise<Error> {
    const err = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof Error)) throw new Error('expected trainHead to reject');
    return err;
  }

  const badOptions: [keyof HeadTrainingOptions, unknown, Partial<HeadTrainingOptions>?][] = [
    ['hidden', -1],
    ['hidden', 1.5],
    ['dropout', 1],
    ['dropout', Number.NaN],
    ['learningRate', 0],
    ['learningRate', Number.POSITIVE_INFINITY],
    ['weightDecay', -0.1],
    ['weightDecay', 200],
    ['labelSmoothing', 0.6],
    ['batchSize', 0],
    ['epochs', -1],
    ['patience', 0],
    ['seed', -1],
    ['seed', 2 ** 32],
    ['onEpoch', 'log'],
    ['init', { weights: new Float32Array(3), bias: new Float32Array(CLASSES) }],
    ['init', { weights: new Float32Array(DIM * CLASSES), bias: new Float32Array(CLASSES) }, { hidden: 8 }],
  ];
  it.each(badOptions)('rejects %s = %s with an InputError naming it', async (name, value, extra) => {
    const opts = { ...BASE, ...extra, [name]: value } as HeadTrainingOptions;
    const err = await failure(trainHead(data, opts, tf));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message.startsWith(name)).toBe(true);
  });

  it('names the classes that have no training examples', async () => {
    const keep = [...data.train.labels.keys()].filter(
      (i) => data.train.labels[i] !== 3 && data.train.labels[i] !== 7,
    );
    const train = {
      features: Float32Array.from(
        keep.flatMap((i) => [...data.train.features.subarray(i * DIM, (i + 1) * DIM)]),
      ),
      labels: Int32Array.from(keep.map((i) => data.train.labels[i]!)),
    };
    const err = await failure(trainHead({ ...data, train }, BASE, tf));
    expect(err).toBeInstanceOf(MissingClassError);
    expect(err).toBeInstanceOf(DataError);
    expect(err.name).toBe('DataError');
    expect((err as MissingClassError).classIndices).toEqual([3, 7]);
  });

  it.each([
    [
      'empty train set',
      { train: { features: new Float32Array(0), labels: new Int32Array(0) } },
      /train set is empty/,
    ],
    [
      'empty val set',
      { val: { features: new Float32Array(0), labels: new Int32Array(0) } },
      /val set is empty/,
    ],
    [
      'label out of range',
      { val: { features: new Float32Array(DIM), labels: Int32Array.of(CLASSES) } },
      /label 10/,
    ],
    [
      'non-finite feature',
      { val: { features: new Float32Array(DIM).fill(Number.NaN), labels: Int32Array.of(0) } },
      /non-finite/,
    ],
    [
      'wrong feature length',
      { val: { features: new Float32Array(DIM - 1), labels: Int32Array.of(0) } },
      /63 feature values/,
    ],
  ])('rejects an %s with a DataError', async (_, change, message) => {
    const err = await failure(trainHead({ ...data, ...change }, BASE, tf));
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(message);
  });
});
