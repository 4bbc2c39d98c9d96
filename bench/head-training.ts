import { pathToFileURL } from 'node:url';
import { loadTf } from '../src/model/tf-backend.ts';
import { type HeadTrainingData, type HeadTrainingOptions, trainHead } from '../src/model/train-head.ts';
import { mulberry32 } from '../src/util/prng.ts';
import { progress, round } from './util.ts';

// Head training on the wasm backend at the real job's size (MobileNetV2's 1280-d pooled feature,
// 120 breeds, the sample's ~3,400 train / 720 val views), against the tfjs cpu backend on the
// same data and settings in the same process. Features are seeded Gaussian clusters: the time per
// epoch depends on the shapes, not on the values.
// Alone: `node bin/tsnode.mjs bench/head-training.ts [--quick]` prints the JSON on stdout.

const SHAPE = { featureDim: 1280, classes: 120, train: 3400, val: 720 };
const SETTINGS: Omit<HeadTrainingOptions, 'epochs' | 'patience'> = {
  hidden: 0,
  dropout: 0.2,
  learningRate: 1e-3,
  weightDecay: 1e-4,
  labelSmoothing: 0.1,
  batchSize: 64,
  seed: 1,
};

function syntheticFeatures(seed: number): HeadTrainingData {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const { featureDim, classes } = SHAPE;
  const centers = Float32Array.from({ length: classes * featureDim }, gauss);
  const split = (n: number) => {
    const features = new Float32Array(n * featureDim);
    const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
    for (let i = 0; i < n; i++)
      for (let d = 0; d < featureDim; d++)
        features[i * featureDim + d] = centers[labels[i]! * featureDim + d]! + 4 * gauss();
    return { features, labels };
  };
  return { train: split(SHAPE.train), val: split(SHAPE.val), featureDim, classes };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function measure(backend: 'wasm' | 'cpu', data: HeadTrainingData, epochs: number) {
  const { tf } = await loadTf(backend);
  const tensorsBefore = tf.memory().numTensors;
  progress(`head-training: ${backend}, ${epochs} epoch(s)`);
  const result = await trainHead(data, { ...SETTINGS, epochs, patience: epochs }, tf);
  const seconds = result.epochs.map((e) => e.seconds);
  return {
    secondsPerEpoch: round(median(seconds)),
    epochSeconds: seconds.map((s) => round(s)),
    valAccuracyAtEpoch1: round(result.epochs[0]!.valAccuracy),
    // trainHead must free what it allocates; anything left here would skew the next run.
    tensorsLeftOver: tf.memory().numTensors - tensorsBefore,
  };
}

export async function benchHeadTraining(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const data = syntheticFeatures(42);
  const { tf } = await loadTf('wasm');
  const previous = tf.getBackend();
  try {
    // The cpu backend is ~8x slower, so it runs fewer epochs; the median epoch is compared.
    const wasm = await measure('wasm', data, opts.quick ? 3 : 8);
    const cpu = await measure('cpu', data, opts.quick ? 1 : 3);
    return {
      shape: { ...SHAPE, batchSize: SETTINGS.batchSize, head: 'linear' },
      settings: SETTINGS,
      wasm,
      cpu,
      cpuOverWasm: round(cpu.secondsPerEpoch / wasm.secondsPerEpoch, 2),
    };
  } finally {
    await tf.setBackend(previous);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await benchHeadTraining({ quick: process.argv.includes('--quick') });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
