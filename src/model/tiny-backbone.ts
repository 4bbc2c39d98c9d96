import { InputError } from '../errors.ts';
import { mulberry32 } from '../util/prng.ts';
import { encodeModel, FLOAT, floatTensor, makeNode, tensorInfo } from './onnx-io.ts';
import { IMAGENET_PREPROCESS } from './types.ts';

// A small ImageNet-style classifier built here, so the synthetic sample runs through the same
// cut / train / merge code as a real backbone: Conv → Relu → GlobalAveragePool → Flatten → Gemm.
// Its filters are designed, not trained. The synthetic classes (src/dataset/sample-data.ts)
// differ by background hue and by stripe angle, period and tone, so the filters measure colour
// along several hue directions and stripe energy at a few orientations and periods.

export interface TinyBackboneOptions {
  /** Side of the square input, in pixels (default 64). */
  inputSize?: number;
  /** Seeds the dummy classifier's weights (default 1). */
  seed?: number;
}

/** The dummy ImageNet-style classifier's outputs: present only so the graph has a classifier to cut off. */
const DUMMY_CLASSES = 10;
const HUE_DIRECTIONS = 8;
const ORIENTATIONS = 6;
/** Stripe periods of the synthetic classes at 64 px: 10..31 px at 320 px, scaled by 64/320. */
const PERIODS_AT_64 = [3.4, 4.8, 6.2];
/** Stripe responses are weak next to colour means; this puts both on a similar scale. */
const STRIPE_GAIN = 20;

/** One output channel in pixel space: weights per [channel][y][x] on RGB in 0..1. */
type PixelFilter = Float64Array;

export function buildTinyBackbone(opts: TinyBackboneOptions = {}): Uint8Array {
  const size = opts.inputSize ?? 64;
  if (!Number.isInteger(size) || size < 16)
    throw new InputError(`inputSize must be an integer ≥ 16, got ${size}`);
  const scale = size / 64;
  const k = 2 * Math.round(6 * scale) + 1; // covers the longest stripe period twice
  const filters = [
    ...colourFilters(k),
    ...PERIODS_AT_64.flatMap((p) =>
      Array.from({ length: ORIENTATIONS }, (_, i) =>
        stripeFilter(k, p * scale, (i * Math.PI) / ORIENTATIONS),
      ),
    ),
  ];
  const { weights, bias } = toNormalizedInput(filters, k);
  const features = filters.length;

  const rand = mulberry32(opts.seed ?? 1);
  const gemmWeights = Array.from({ length: features * DUMMY_CLASSES }, () => (rand() - 0.5) * 0.2);
  const pad = (k - 1) / 2;
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'dogbreed-pipeline tiny backbone',
    graph: {
      name: 'tiny-backbone',
      node: [
        makeNode('Conv', ['input', 'conv_weights', 'conv_bias'], ['conv'], {
          kernel_shape: [k, k],
          strides: [2, 2],
          pads: [pad, pad, pad, pad],
        }),
        makeNode('Relu', ['conv'], ['relu']),
        makeNode('GlobalAveragePool', ['relu'], ['pooled']),
        makeNode('Flatten', ['pooled'], ['flat'], { axis: 1 }),
        makeNode('Gemm', ['flat', 'gemm_weights', 'gemm_bias'], ['logits']),
      ],
      initializer: [
        floatTensor('conv_weights', [features, 3, k, k], weights),
        floatTensor('conv_bias', [features], bias),
        floatTensor('gemm_weights', [features, DUMMY_CLASSES], gemmWeights),
        floatTensor('gemm_bias', [DUMMY_CLASSES], new Float32Array(DUMMY_CLASSES)),
      ],
      input: [tensorInfo('input', FLOAT, ['N', 3, size, size])],
      output: [tensorInfo('logits', FLOAT, ['N', DUMMY_CLASSES])],
    },
  });
}

/**
 * Colour at the centre tap: brightness, and chroma projected on hue directions around the
 * circle (ReLU keeps the positive side, so together they say which hue dominates).
 */
function colourFilters(k: number): PixelFilter[] {
  const centre = (k * k - 1) / 2;
  const tap = (r: number, g: number, b: number) => {
    const f = new Float64Array(3 * k * k);
    [r, g, b].forEach((w, c) => {
      f[c * k * k + centre] = w;
    });
    return f;
  };
  const hues = Array.from({ length: HUE_DIRECTIONS }, (_, i) => {
    const angle = (2 * Math.PI * i) / HUE_DIRECTIONS;
    // Opponent axes: a = R − (G+B)/2, b = (G − B)·√3/2; the projection on `angle`.
    const [ca, sa] = [Math.cos(angle), Math.sin(angle)];
    const half = Math.sqrt(3) / 2;
    return tap(ca, -ca / 2 + sa * half, -ca / 2 - sa * half);
  });
  return [tap(1 / 3, 1 / 3, 1 / 3), ...hues];
}

/** Zero-mean Gabor on luminance: responds to stripes of `period` px across direction `angle`. */
function stripeFilter(k: number, period: number, angle: number): PixelFilter {
  const half = (k - 1) / 2;
  const sigma = 0.6 * period;
  const wave = new Float64Array(k * k);
  const kernel = new Float64Array(k * k);
  for (let y = 0; y < k; y++) {
    for (let x = 0; x < k; x++) {
      const [dx, dy] = [x - half, y - half];
      wave[y * k + x] = Math.cos((2 * Math.PI * (dx * Math.cos(angle) + dy * Math.sin(angle))) / period);
      kernel[y * k + x] = Math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) * wave[y * k + x]!;
    }
  }
  // No response to flat colour, unit response to a matched full-contrast sinusoid.
  const mean = kernel.reduce((sum, v) => sum + v, 0) / kernel.length;
  let gain = 0;
  for (let i = 0; i < kernel.length; i++) {
    kernel[i] = kernel[i]! - mean;
    gain += kernel[i]! * wave[i]!;
  }
  const luma = [0.299, 0.587, 0.114];
  const f = new Float64Array(3 * k * k);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < k * k; i++) f[c * k * k + i] = (STRIPE_GAIN * luma[c]! * kernel[i]!) / gain;
  }
  return f;
}

/** Moves pixel-space filters onto the ImageNet-normalized input: pixel = x·std + mean. */
function toNormalizedInput(filters: PixelFilter[], k: number): { weights: Float32Array; bias: Float32Array } {
  const { mean, std } = IMAGENET_PREPROCESS;
  const taps = k * k;
  const weights = new Float32Array(filters.length * 3 * taps);
  const bias = new Float32Array(filters.length);
  filters.forEach((f, o) => {
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < taps; i++) {
        const w = f[c * taps + i]!;
        weights[(o * 3 + c) * taps + i] = w * std[c]!;
        bias[o] = bias[o]! + w * mean[c]!;
      }
    }
  });
  return { weights, bias };
}
