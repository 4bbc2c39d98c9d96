import { performance } from 'node:perf_hooks';
import type { GradSaveFunc, Optimizer, Scalar, Tensor, Tensor1D, Tensor2D, Variable } from '@tensorflow/tfjs';
import { DataError, InputError } from '../errors.ts';
import { logger } from '../log.ts';
import { parseInput } from '../schema/parse.ts';
import { mulberry32, shuffle } from '../util/prng.ts';
import { type HeadHyperparameters, HeadHyperparametersSchema } from './head-hyperparameters.ts';
import type { Tf } from './tf-backend.ts';
import type { HeadWeights } from './types.ts';

// Trains the classifier head on precomputed backbone features with a hand-written loop
// rather than tf.LayersModel.fit: fit shuffles with Math.random and a seeded tf Dropout layer
// draws the same mask every step, so neither would be deterministic-and-correct for a seed.

export interface LabelledFeatures {
  /** Row-major [examples × featureDim]. */
  features: Float32Array;
  /** Class index per example, 0 ≤ label < classes. */
  labels: Int32Array;
}

export interface HeadTrainingData {
  train: LabelledFeatures;
  val: LabelledFeatures;
  featureDim: number;
  classes: number;
}

export interface EpochLog {
  /** 1-based. */
  epoch: number;
  /** Mean label-smoothed cross-entropy over the epoch's batches, with dropout on (as Keras reports it). */
  trainLoss: number;
  trainAccuracy: number;
  /** Plain cross-entropy (no smoothing), so runs with different smoothing compare. */
  valLoss: number;
  valAccuracy: number;
  seconds: number;
}

/** The hyperparameters (limits in head-hyperparameters.ts), and where to start from. */
export interface HeadTrainingOptions extends HeadHyperparameters {
  /** Starting rows of a linear head (e.g. the backbone's own classifier rows for these classes). */
  init?: { weights: Float32Array; bias: Float32Array };
  onEpoch?: (e: EpochLog) => void;
}

export interface HeadTrainingResult {
  /** The weights of the best epoch by validation accuracy (ties: lower validation loss). */
  head: HeadWeights;
  /** 1-based index into `epochs`; 0 only when epochs was 0 (the head is then the starting weights). */
  bestEpoch: number;
  epochs: EpochLog[];
  backend: string;
  stoppedEarly: boolean;
}

/** Some classes have no training examples; `classIndices` lets the caller name them. */
export class MissingClassError extends DataError {
  constructor(readonly classIndices: number[]) {
    super(
      `no training examples for class ${classIndices.length === 1 ? 'index' : 'indices'} ${classIndices.join(', ')}`,
    );
  }
}

type Layer = HeadWeights['layers'][number];
interface Evaluation {
  loss: number;
  accuracy: number;
}

/** Rows per forward pass when evaluating, to bound memory on large validation sets. */
const EVAL_CHUNK = 2048;

export async function trainHead(
  data: HeadTrainingData,
  opts: HeadTrainingOptions,
  tf: Tf,
): Promise<HeadTrainingResult> {
  const nTrain = checkData(data);
  checkOptions(opts, data);
  const { featureDim, classes } = data;
  const rand = mulberry32(opts.seed);
  const start = opts.init
    ? [{ weights: opts.init.weights, bias: opts.init.bias, inDim: featureDim, outDim: classes }]
    : initialLayers(featureDim, opts.hidden, classes, rand);
  // A variable shares its initial tensor's data; tidy drops that tensor's reference.
  const params = start.map((l) =>
    tf.tidy(() => ({
      w: tf.variable(tf.tensor2d(l.weights, [l.inDim, l.outDim])),
      b: tf.variable(tf.tensor1d(l.bias)),
    })),
  );
  const vars: Variable[] = params.flatMap((p) => [p.w, p.b]);
  const valX = tf.tensor2d(data.val.features, [data.val.labels.length, featureDim]);
  const valY = tf.tensor1d(data.val.labels, 'int32');
  // Typed as the base class: AdamOptimizer narrows applyGradients' parameter to Variables.
  const optimizer: Optimizer = tf.train.adam(opts.learningRate);
  const decay = 1 - opts.learningRate * opts.weightDecay;

  const forward = (x: Tensor2D, dropoutSeed?: number): Tensor2D => {
    let h = x;
    params.forEach((p, i) => {
      const last = i === params.length - 1;
      if (last && dropoutSeed !== undefined && opts.dropout > 0)
        h = tf.dropout(h, opts.dropout, undefined, dropoutSeed) as Tensor2D;
      h = tf.add(denseMatMul(tf, h, p.w, i > 0), p.b);
      if (!last) h = tf.relu(h);
    });
    return h;
  };

  const evaluate = async (): Promise<Evaluation> => {
    const n = data.val.labels.length;
    let sums = tf.zeros([2]);
    for (let from = 0; from < n; from += EVAL_CHUNK) {
      const next = tf.tidy(() => {
        const size = Math.min(EVAL_CHUNK, n - from);
        const logits = forward(tf.slice(valX, [from, 0], [size, featureDim]));
        const y = tf.slice(valY, [from], [size]);
        const loss = tf.losses.softmaxCrossEntropy(
          tf.oneHot(y, classes),
          logits,
          undefined,
          0,
          tf.Reduction.SUM,
        );
        return tf.add(sums, tf.stack([loss, correctCount(tf, logits, y)]));
      });
      sums.dispose();
      sums = next;
    }
    const [loss, correct] = await readAndDispose(sums);
    return { loss: loss! / n, accuracy: correct! / n };
  };

  const trainEpoch = async (): Promise<Evaluation> => {
    const order = shuffle(
      Array.from({ length: nTrain }, (_, i) => i),
      rand,
    );
    let sums = tf.zeros([2]);
    for (let from = 0; from < nTrain; from += opts.batchSize) {
      const batch = order.slice(from, from + opts.batchSize);
      const dropoutSeed = Math.floor(rand() * 2 ** 31);
      const next = tf.tidy(() => {
        const { x, y } = batchTensors(tf, data.train, featureDim, batch);
        let logits: Tensor2D | undefined;
        const { value, grads } = tf.variableGrads(() => {
          // Kept past the gradient's own tidy so the batch accuracy needs no second forward pass.
          logits = tf.keep(forward(x, dropoutSeed));
          // softmaxCrossEntropy takes logits (stable log-softmax), unlike sparseCategoricalCrossentropy.
          return tf.losses.softmaxCrossEntropy(
            tf.oneHot(y, classes),
            logits,
            undefined,
            opts.labelSmoothing,
          ) as Scalar;
        }, vars);
        // AdamW: shrink kernels by the pre-step weights, then take the Adam step.
        if (decay !== 1) for (const p of params) p.w.assign(tf.mul(p.w, decay));
        optimizer.applyGradients(grads);
        const correct = correctCount(tf, logits!, y);
        logits!.dispose();
        return tf.add(sums, tf.stack([tf.mul(value, batch.length), correct]));
      });
      sums.dispose();
      sums = next;
    }
    const [loss, correct] = await readAndDispose(sums);
    return { loss: loss! / nTrain, accuracy: correct! / nTrain };
  };

  try {
    // Epoch 0 (the starting weights) is returned only when no epoch is trained.
    let best = {
      epoch: 0,
      accuracy: -1,
      loss: Number.POSITIVE_INFINITY,
      layers: await snapshot(params, start),
    };
    const epochs: EpochLog[] = [];
    let stoppedEarly = false;
    for (let epoch = 1; epoch <= opts.epochs; epoch++) {
      const t0 = performance.now();
      const train = await trainEpoch();
      const val = await evaluate();
      if (val.accuracy > best.accuracy || (val.accuracy === best.accuracy && val.loss < best.loss))
        best = { epoch, ...val, layers: await snapshot(params, start) };
      const log: EpochLog = {
        epoch,
        trainLoss: train.loss,
        trainAccuracy: train.accuracy,
        valLoss: val.loss,
        valAccuracy: val.accuracy,
        seconds: (performance.now() - t0) / 1000,
      };
      epochs.push(log);
      logger.debug('head epoch', { ...log });
      opts.onEpoch?.(log);
      if (epoch - best.epoch >= opts.patience && epoch < opts.epochs) {
        stoppedEarly = true;
        break;
      }
    }
    logger.info('head trained', {
      backend: tf.getBackend(),
      bestEpoch: best.epoch,
      valAccuracy: best.accuracy,
      epochsRun: epochs.length,
      stoppedEarly,
    });
    return {
      head: { inputDim: featureDim, classes, layers: best.layers },
      bestEpoch: best.epoch,
      epochs,
      backend: tf.getBackend(),
      stoppedEarly,
    };
  } finally {
    optimizer.dispose();
    tf.dispose([...vars, valX, valY]);
  }
}

/**
 * x·W with hand-written gradients that multiply explicitly transposed operands: tfjs-backend-wasm
 * 4.22 runs a matMul with transpose flags (what the built-in gradient uses) 6–10x slower than a
 * plain one. dL/dx is computed only when asked: the first layer's input is data, not a parameter.
 */
function denseMatMul(tf: Tf, x: Tensor2D, w: Tensor2D, inputGrad: boolean): Tensor2D {
  const op = tf.customGrad((...args: (Tensor | GradSaveFunc)[]) => {
    (args.at(-1) as GradSaveFunc)([x, w]);
    return {
      value: tf.matMul<Tensor2D>(x, w),
      // The saved copies, not x and w: the forward pass's tidy may have disposed those.
      gradFunc: (dy: Tensor2D, [xs, ws]: Tensor[]) => {
        const dw = tf.matMul(tf.transpose(xs as Tensor2D), dy);
        return inputGrad ? [tf.matMul(dy, tf.transpose(ws as Tensor2D)), dw] : [dw];
      },
    };
  });
  return inputGrad ? op(x, w) : op(w);
}

/** One batch copied out of the JS arrays: cheaper than tf.gather on wasm and a small upload to a GPU. */
function batchTensors(tf: Tf, split: LabelledFeatures, featureDim: number, rows: number[]) {
  const features = new Float32Array(rows.length * featureDim);
  rows.forEach((row, k) => {
    features.set(split.features.subarray(row * featureDim, (row + 1) * featureDim), k * featureDim);
  });
  return {
    x: tf.tensor2d(features, [rows.length, featureDim]),
    y: tf.tensor1d(
      Int32Array.from(rows, (row) => split.labels[row]!),
      'int32',
    ),
  };
}

function correctCount(tf: Tf, logits: Tensor2D, labels: Tensor1D): Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
}

async function readAndDispose(t: Tensor): Promise<Float32Array> {
  const values = (await t.data()) as Float32Array;
  t.dispose();
  return values;
}

/** Copies the current weights out (the best epoch's must survive later steps). */
async function snapshot(params: { w: Variable; b: Variable }[], shapes: Layer[]): Promise<Layer[]> {
  return Promise.all(
    params.map(async (p, i) => ({
      weights: new Float32Array(await p.w.data()),
      bias: new Float32Array(await p.b.data()),
      inDim: shapes[i]!.inDim,
      outDim: shapes[i]!.outDim,
    })),
  );
}

/** He-uniform for the ReLU layer, Glorot-uniform for the output layer, zero biases; drawn in JS from the seed. */
function initialLayers(featureDim: number, hidden: number, classes: number, rand: () => number): Layer[] {
  const dims = hidden > 0 ? [featureDim, hidden, classes] : [featureDim, classes];
  return dims.slice(1).map((outDim, i) => {
    const inDim = dims[i]!;
    const last = i === dims.length - 2;
    const limit = Math.sqrt(6 / (last ? inDim + outDim : inDim));
    const weights = new Float32Array(inDim * outDim);
    for (let j = 0; j < weights.length; j++) weights[j] = (2 * rand() - 1) * limit;
    return { weights, bias: new Float32Array(outDim), inDim, outDim };
  });
}

/** Returns the number of training examples. */
function checkData(data: HeadTrainingData): number {
  const { featureDim, classes } = data;
  if (!Number.isInteger(featureDim) || featureDim < 1)
    throw new DataError(`featureDim must be a positive integer, got ${featureDim}`);
  if (!Number.isInteger(classes) || classes < 2)
    throw new DataError(`classes must be an integer ≥ 2, got ${classes}`);
  for (const split of ['train', 'val'] as const) {
    const { features, labels } = data[split];
    if (labels.length === 0) throw new DataError(`the ${split} set is empty`);
    if (features.length !== labels.length * featureDim)
      throw new DataError(
        `${split}: ${features.length} feature values for ${labels.length} labels × ${featureDim} dims`,
      );
    const badLabel = labels.findIndex((l) => l < 0 || l >= classes);
    if (badLabel >= 0)
      throw new DataError(
        `${split}: example ${badLabel} has label ${labels[badLabel]}, outside 0…${classes - 1}`,
      );
    // A plain loop: findIndex with a callback took ~90 ms over the sample's 12.9M training values, this ~15.
    let badValue = -1;
    for (let i = 0; i < features.length; i++) {
      if (!Number.isFinite(features[i]!)) {
        badValue = i;
        break;
      }
    }
    if (badValue >= 0)
      throw new DataError(`${split}: example ${Math.floor(badValue / featureDim)} has a non-finite feature`);
  }
  const seen = new Uint8Array(classes);
  for (const l of data.train.labels) seen[l] = 1;
  const missing = [...seen.keys()].filter((c) => seen[c] === 0);
  if (missing.length > 0) throw new MissingClassError(missing);
  return data.train.labels.length;
}

function checkOptions(opts: HeadTrainingOptions, data: HeadTrainingData): void {
  parseInput(HeadHyperparametersSchema, opts, { name: 'options', bare: true });
  if (opts.onEpoch !== undefined && typeof opts.onEpoch !== 'function')
    throw new InputError('onEpoch must be a function');
  const { init } = opts;
  if (init === undefined) return;
  if (opts.hidden !== 0)
    throw new InputError(`init sets a linear head's rows, so hidden must be 0, got ${opts.hidden}`);
  const want = data.featureDim * data.classes;
  if (!(init.weights instanceof Float32Array) || init.weights.length !== want)
    throw new InputError(
      `init.weights must be a Float32Array of ${data.featureDim} × ${data.classes} = ${want}`,
    );
  if (!(init.bias instanceof Float32Array) || init.bias.length !== data.classes)
    throw new InputError(`init.bias must be a Float32Array of ${data.classes}`);
  if (!init.weights.every(Number.isFinite) || !init.bias.every(Number.isFinite))
    throw new InputError('init has non-finite values');
}
