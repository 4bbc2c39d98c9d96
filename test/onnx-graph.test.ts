import { readdir, readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { DataError, InputError } from '../src/errors.ts';
import {
  cutAtFeature,
  extractClassifier,
  findFeatureCut,
  findFeatureCutAsync,
  loadModel,
  mergeBackbones,
  mergeHead,
  PROBABILITIES,
} from '../src/model/onnx-graph.ts';
import {
  type AttrValue,
  encodeModel,
  FLOAT,
  floatTensor,
  makeNode,
  type Onnx,
  tensorInfo,
} from '../src/model/onnx-io.ts';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import type { BackboneClassifier, FeatureCut, HeadWeights } from '../src/model/types.ts';
import { mulberry32 } from '../src/util/prng.ts';
import { describeShared, SHARED_BACKBONE, SHARED_SAMPLE_DIR } from './helpers/shared.ts';

// ---- helpers: running models and the reference maths they must match ----

interface Output {
  data: Float32Array;
  dims: readonly number[];
}

async function runModel(
  bytes: Uint8Array,
  input: Float32Array,
  dims: number[],
  output?: string,
): Promise<Output> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const result = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, dims) });
    const out = result[output ?? session.outputNames[0]!]!;
    return { data: out.data as Float32Array, dims: out.dims };
  } finally {
    await session.release();
  }
}

function randomValues(n: number, seed: number, scale = 2): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

function randomHead(inputDim: number, widths: number[], seed: number): HeadWeights {
  const dims = [inputDim, ...widths];
  const layers = widths.map((outDim, i) => {
    const inDim = dims[i]!;
    return {
      inDim,
      outDim,
      weights: randomValues(inDim * outDim, seed + i, 1 / Math.sqrt(inDim)),
      bias: randomValues(outDim, seed + 100 + i, 0.5),
    };
  });
  return { inputDim, classes: widths.at(-1)!, layers };
}

/** x·W + b per row, float64. */
function dense(
  x: ArrayLike<number>,
  rows: number,
  inDim: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
) {
  const outDim = b.length;
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o]!;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i]! * w[i * outDim + o]!;
      y[r * outDim + o] = s;
    }
  }
  return y;
}

function softmaxRows(x: Float64Array, cols: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const max = Math.max(...row);
    const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
    row.forEach((v, o) => {
      y[r * cols + o] = Math.exp(v - max) / sum;
    });
  }
  return y;
}

/** The reference the merged model must match: softmax(head(features)). */
function headProbabilities(features: Float32Array, rows: number, head: HeadWeights): Float64Array {
  let x: Float64Array = Float64Array.from(features);
  head.layers.forEach((layer, i) => {
    x = dense(x, rows, layer.inDim, layer.weights, layer.bias);
    if (i < head.layers.length - 1) x = x.map((v) => Math.max(0, v));
  });
  return softmaxRows(x, head.classes);
}

function classifierLogits(features: ArrayLike<number>, rows: number, cls: BackboneClassifier): Float64Array {
  return dense(features, rows, features.length / rows, cls.weights, cls.bias);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

function argmaxRows(x: ArrayLike<number>, cols: number): number[] {
  return Array.from({ length: x.length / cols }, (_, r) => {
    let best = 0;
    for (let o = 1; o < cols; o++) if (x[r * cols + o]! > x[r * cols + best]!) best = o;
    return best;
  });
}

/** A small hand-made graph, opset 13. */
function graphModel(
  nodes: [op: string, inputs: string[], outputs: string[], attrs?: Record<string, AttrValue>][],
  initializers: Onnx.ITensorProto[],
  input: Onnx.IValueInfoProto,
  output: string | Onnx.IValueInfoProto,
): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'test',
      node: nodes.map(([op, i, o, a]) => makeNode(op, i, o, a)),
      initializer: initializers,
      input: [input],
      // A bare name: an output whose shape the graph leaves undeclared.
      output: [
        typeof output === 'string' ? { name: output, type: { tensorType: { elemType: FLOAT } } } : output,
      ],
    },
  });
}

function scalar(name: string, value: number, dataType: number): Onnx.ITensorProto {
  return dataType === FLOAT
    ? floatTensor(name, [], [value])
    : { name, dims: [], dataType, int32Data: [value] };
}

const UINT8 = 2;
const TINY_FEATURES = 27; // 1 brightness + 8 hue directions + 3 periods × 6 orientations

// ---- loadModel ----

describe('loadModel', () => {
  const rand = mulberry32(3);
  const random = Uint8Array.from({ length: 4096 }, () => Math.floor(rand() * 256));
  it.each([
    [
      'an empty file',
      new Uint8Array(0),
      'the file is empty (0 bytes). Expected a binary ONNX ModelProto (.onnx).',
    ],
    ['random bytes', random, 'look like unrecognised binary data.'],
    ['a JPEG', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 74, 70, 73, 70, 0]), 'look like a JPEG image.'],
    [
      'an HTML page',
      Buffer.from('<!DOCTYPE html><html><body>Sign in</body></html>'),
      'look like an HTML/XML page',
    ],
    [
      'a Git LFS pointer',
      Buffer.from('version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n'),
      'Git LFS pointer',
    ],
  ])('rejects %s with a DataError that says what the bytes are', (_, bytes, hint) => {
    const attempt = () => loadModel(bytes, 'models/backbone.onnx');
    expect(attempt).toThrow(DataError);
    expect(attempt).toThrow(/^models\/backbone\.onnx is not an ONNX model: /);
    expect(attempt).toThrow(hint);
  });

  it('rejects 500 random byte strings of every length, never returning a model', () => {
    for (let seed = 0; seed < 500; seed++) {
      const rand = mulberry32(seed);
      const bytes = Uint8Array.from({ length: 1 + seed }, () => Math.floor(rand() * 256));
      expect(() => loadModel(bytes, 'r')).toThrow(DataError);
    }
  });

  it('decodes a real model', () => {
    const model = loadModel(buildTinyBackbone(), 'tiny');
    expect(model.graph?.node?.map((n) => n.opType)).toEqual([
      'Conv',
      'Relu',
      'GlobalAveragePool',
      'Flatten',
      'Gemm',
    ]);
  });
});

// ---- the tiny backbone ----

describe('graph cut on the tiny backbone', () => {
  const bytes = buildTinyBackbone();
  const model = loadModel(bytes, 'tiny');
  const cut = findFeatureCut(model, { source: 'tiny' });
  const rows = 3;
  const input = randomValues(rows * 3 * 64 * 64, 11);

  it('finds the pooled feature, its width and the input', () => {
    expect(cut).toEqual({
      inputName: 'input',
      inputShape: [-1, 3, 64, 64],
      featureTensor: 'pooled',
      featureDim: TINY_FEATURES,
    });
    expect(findFeatureCut(loadModel(buildTinyBackbone({ inputSize: 96 }), 't')).inputShape).toEqual([
      -1, 3, 96, 96,
    ]);
  });

  it('prunes the classifier: the cut keeps only what the feature needs', () => {
    const cutModel = loadModel(cutAtFeature(model, cut), 'cut');
    const graph = cutModel.graph!;
    expect(graph.node?.map((n) => n.opType)).toEqual(['Conv', 'Relu', 'GlobalAveragePool', 'Flatten']);
    expect(graph.initializer?.map((t) => t.name)).toEqual(['conv_weights', 'conv_bias']);
    expect(graph.input?.map((i) => i.name)).toEqual(['input']);
    expect(graph.output?.length).toBe(1);
  });

  it('outputs the pooled feature: the backbone classifier on it reproduces the logits', async () => {
    const features = await runModel(cutAtFeature(model, cut), input, [rows, 3, 64, 64]);
    expect(features.dims).toEqual([rows, TINY_FEATURES]);
    const logits = await runModel(bytes, input, [rows, 3, 64, 64]);
    const cls = extractClassifier(model, cut)!;
    expect(cls.outputs).toBe(10);
    expect(maxAbsDiff(classifierLogits(features.data, rows, cls), logits.data)).toBeLessThan(1e-4);
  });

  it('accepts the Flatten output named explicitly: same width, same classifier', () => {
    const flat = findFeatureCut(model, { featureTensor: 'flat' });
    expect(flat).toEqual({ ...cut, featureTensor: 'flat' });
    expect(extractClassifier(model, flat)?.weights).toEqual(extractClassifier(model, cut)?.weights);
  });

  it('rejects a feature tensor that does not exist, listing candidates', () => {
    expect(() => findFeatureCut(model, { featureTensor: 'avgpool', source: 'tiny.onnx' })).toThrow(
      new DataError(
        'feature tensor avgpool is not computed by any node of tiny.onnx; candidates: ' +
          `pooled (GlobalAveragePool, ${TINY_FEATURES} features), flat (Flatten, ${TINY_FEATURES} features)`,
      ),
    );
  });
});

// ---- other layouts ----

describe('feature detection on other layouts', () => {
  const rows = 2;
  const image = tensorInfo('image', FLOAT, ['N', 4, 5, 5]);
  const input = randomValues(rows * 4 * 25, 5);
  /** Per-channel means of `input`, computed here. */
  const channelMeans = Float64Array.from({ length: rows * 4 }, (_, i) => {
    let s = 0;
    for (let p = 0; p < 25; p++) s += input[i * 25 + p]!;
    return s / 25;
  });

  it('ReduceMean over H, W + MatMul + Add + Softmax: finds the mean, extracts W and b', async () => {
    const w = randomValues(4 * 6, 1);
    const b = randomValues(6, 2);
    const bytes = graphModel(
      [
        ['ReduceMean', ['image'], ['mean'], { axes: [2, 3], keepdims: 0 }],
        ['MatMul', ['mean', 'w'], ['mm']],
        ['Add', ['b', 'mm'], ['logits']],
        ['Softmax', ['logits'], ['prob'], { axis: 1 }],
      ],
      [floatTensor('w', [4, 6], w), floatTensor('b', [6], b)],
      image,
      'prob',
    );
    const model = loadModel(bytes, 'reduce-mean');
    const cut = findFeatureCut(model);
    expect(cut).toEqual({
      inputName: 'image',
      inputShape: [-1, 4, 5, 5],
      featureTensor: 'mean',
      featureDim: 4,
    });
    const features = await runModel(cutAtFeature(model, cut), input, [rows, 4, 5, 5]);
    expect(maxAbsDiff(features.data, channelMeans)).toBeLessThan(1e-6);
    const cls = extractClassifier(model, cut)!;
    expect(Array.from(cls.weights)).toEqual(Array.from(w));
    expect(Array.from(cls.bias)).toEqual(Array.from(b));
    const prob = await runModel(bytes, input, [rows, 4, 5, 5]);
    expect(maxAbsDiff(softmaxRows(classifierLogits(features.data, rows, cls), 6), prob.data)).toBeLessThan(
      1e-6,
    );
  });

  it('GlobalAveragePool + Reshape + Gemm(transB, alpha, beta): the dequantised classifier respects all three', async () => {
    const w = randomValues(6 * 4, 3); // [outputs, features] since transB = 1
    const c = randomValues(6, 4);
    const bytes = graphModel(
      [
        ['GlobalAveragePool', ['image'], ['gap']],
        ['Reshape', ['gap', 'shape'], ['flat']],
        ['Gemm', ['flat', 'w', 'c'], ['logits'], { transB: 1, alpha: { float: 0.5 }, beta: { float: 2 } }],
      ],
      [
        floatTensor('w', [6, 4], w),
        floatTensor('c', [6], c),
        { name: 'shape', dims: [2], dataType: 7, int64Data: [0, -1] },
      ],
      image,
      'logits',
    );
    const model = loadModel(bytes, 'gemm');
    const cut = findFeatureCut(model);
    expect(cut.featureTensor).toBe('gap');
    expect(cut.featureDim).toBe(4);
    const cls = extractClassifier(model, cut)!;
    expect(cls.weights[1 * 6 + 2]).toBeCloseTo(0.5 * w[2 * 4 + 1]!, 6);
    expect(cls.bias[3]).toBeCloseTo(2 * c[3]!, 6);
    const logits = await runModel(bytes, input, [rows, 4, 5, 5]);
    expect(maxAbsDiff(classifierLogits(channelMeans, rows, cls), logits.data)).toBeLessThan(1e-5);
  });

  it('follows QuantizeLinear/DequantizeLinear wrappers back to the float pooled tensor', async () => {
    // A coarse scale: cutting at the dequantised copy would be off by up to 0.1.
    const bytes = graphModel(
      [
        ['GlobalAveragePool', ['image'], ['gap']],
        ['QuantizeLinear', ['gap', 's', 'z'], ['gap_q']],
        ['DequantizeLinear', ['gap_q', 's', 'z'], ['gap_dq']],
        ['Flatten', ['gap_dq'], ['flat']],
        ['Gemm', ['flat', 'w'], ['logits']],
      ],
      [scalar('s', 0.2, FLOAT), scalar('z', 128, UINT8), floatTensor('w', [4, 3], randomValues(12, 9))],
      image,
      'logits',
    );
    const model = loadModel(bytes, 'qdq');
    const cut = findFeatureCut(model);
    expect(cut.featureTensor).toBe('gap');
    const explicit = findFeatureCut(model, { featureTensor: 'flat' });
    for (const c of [cut, explicit]) {
      const features = await runModel(cutAtFeature(model, c), input, [rows, 4, 5, 5]);
      expect(maxAbsDiff(features.data, channelMeans)).toBeLessThan(1e-6);
    }
  });

  /** The bits of a float16 for a value it represents exactly (the test's weights are k/64). */
  const halfBits = (v: number) => {
    if (v === 0) return 0;
    const e = Math.floor(Math.log2(Math.abs(v)));
    return (v < 0 ? 0x8000 : 0) | ((e + 15) << 10) | Math.round((Math.abs(v) / 2 ** e - 1) * 1024);
  };
  const float16 = (name: string, dims: number[], values: number[]): Onnx.ITensorProto => {
    const raw = new Uint8Array(values.length * 2);
    const view = new DataView(raw.buffer);
    values.forEach((v, i) => {
      view.setUint16(i * 2, halfBits(v), true);
    });
    return { name, dims, dataType: FLOAT16_TYPE, rawData: raw };
  };
  /** Weights [4 features × 3 classes] as k/64: exact in float16 and int8 with scale 1/64. */
  const steps = Array.from({ length: 12 }, (_, i) => ((i * 37) % 23) - 11);
  const w = steps.map((k) => k / 64);
  const b = [0.25, -0.5, 0.125];
  const wT = [0, 1, 2].flatMap((o) => [0, 1, 2, 3].map((r) => w[r * 3 + o]!));
  const FLOAT16_TYPE = 10;
  const INT8 = 3;
  const CAST_TO_FLOAT = { to: FLOAT };
  it.each<[string, Parameters<typeof graphModel>[0], Onnx.ITensorProto[]]>([
    [
      'Cast of float16 weights and bias (float16 storage)',
      [
        ['Cast', ['w16'], ['w'], CAST_TO_FLOAT],
        ['Cast', ['b16'], ['b'], CAST_TO_FLOAT],
        ['Gemm', ['flat', 'w', 'b'], ['logits']],
      ],
      [float16('w16', [4, 3], w), float16('b16', [3], b)],
    ],
    [
      'DequantizeLinear of int8 weights, per-column scale and zero point (QDQ)',
      [
        ['DequantizeLinear', ['wq', 'ws', 'wz'], ['w'], { axis: 1 }],
        ['MatMul', ['flat', 'w'], ['mm']],
        ['Add', ['mm', 'b'], ['logits']],
      ],
      [
        { name: 'wq', dims: [4, 3], dataType: INT8, int32Data: steps.map((k, i) => k + (i % 3) - 1) },
        floatTensor('ws', [3], [1 / 64, 1 / 64, 1 / 64]),
        { name: 'wz', dims: [3], dataType: INT8, int32Data: [-1, 0, 1] },
        floatTensor('b', [3], b),
      ],
    ],
    [
      'Identity, then Transpose of [classes × features] weights, bias Add first',
      [
        ['Identity', ['wt'], ['wt_id']],
        ['Transpose', ['wt_id'], ['w'], { perm: [1, 0] }],
        ['MatMul', ['flat', 'w'], ['mm']],
        ['Add', ['b', 'mm'], ['logits']],
      ],
      [floatTensor('wt', [3, 4], wT), floatTensor('b', [3], b)],
    ],
    [
      'Reshape of flat weights through a Cast',
      [
        ['Reshape', ['wflat', 'shape'], ['w4']],
        ['Cast', ['w4'], ['w'], CAST_TO_FLOAT],
        ['Gemm', ['flat', 'w', 'b'], ['logits']],
      ],
      [
        floatTensor('wflat', [12], w),
        { name: 'shape', dims: [2], dataType: 7, int64Data: [4, -1] },
        floatTensor('b', [3], b),
      ],
    ],
  ])('classifier weights behind a constant chain: %s', async (_, chain, initializers) => {
    const bytes = graphModel(
      [['GlobalAveragePool', ['image'], ['gap']], ['Flatten', ['gap'], ['flat']], ...chain],
      initializers,
      image,
      'logits',
    );
    const model = loadModel(bytes, 'chain');
    const cut = findFeatureCut(model);
    expect(cut).toMatchObject({ featureTensor: 'gap', featureDim: 4 });
    const cls = extractClassifier(model, cut);
    expect(cls?.outputs).toBe(3);
    expect(Array.from(cls!.weights)).toEqual(w);
    expect(Array.from(cls!.bias)).toEqual(b);
    const logits = await runModel(bytes, input, [rows, 4, 5, 5]);
    // 1e-3: onnxruntime runs DequantizeLinear + MatMul as an integer MatMul on quantised inputs.
    expect(maxAbsDiff(classifierLogits(channelMeans, rows, cls!), logits.data)).toBeLessThan(1e-3);
  });

  it('a weight chain through an op that is not constant-foldable: no classifier, not a wrong one', () => {
    const bytes = graphModel(
      [
        ['GlobalAveragePool', ['image'], ['gap']],
        ['Flatten', ['gap'], ['flat']],
        ['Relu', ['w0'], ['w']],
        ['MatMul', ['flat', 'w'], ['logits']],
      ],
      [floatTensor('w0', [4, 3], w)],
      image,
      'logits',
    );
    const model = loadModel(bytes, 'relu-weights');
    const cut = findFeatureCut(model, { featureTensor: 'gap' });
    expect(extractClassifier(model, cut)).toBeUndefined();
  });

  it('a feature extractor whose width only a run tells: the sync finder says so, the async one measures it', async () => {
    const bytes = graphModel(
      [
        ['Concat', ['image', 'image', 'image'], ['stacked'], { axis: 1 }],
        ['GlobalAveragePool', ['stacked'], ['gap']],
        ['Flatten', ['gap'], ['features']],
      ],
      [],
      image,
      'features',
    );
    const model = loadModel(bytes, 'extractor');
    expect(() => findFeatureCut(model, { source: 'extractor' })).toThrow(
      new DataError(
        'the width of feature tensor gap in extractor is not declared in the graph; findFeatureCutAsync measures it by running the model',
      ),
    );
    const cut = await findFeatureCutAsync(model, { source: 'extractor' });
    expect(cut).toEqual({
      inputName: 'image',
      inputShape: [-1, 4, 5, 5],
      featureTensor: 'gap',
      featureDim: 12,
    });
    expect(extractClassifier(model, cut)).toBeUndefined();
    const features = await runModel(cutAtFeature(model, cut), input, [rows, 4, 5, 5]);
    expect(features.dims).toEqual([rows, 12]);
  });

  it('the same graph with a Gemm(transB) classifier on top: its weight shape gives the width', () => {
    const bytes = graphModel(
      [
        ['Concat', ['image', 'image', 'image'], ['stacked'], { axis: 1 }],
        ['GlobalAveragePool', ['stacked'], ['gap']],
        ['Flatten', ['gap'], ['flat']],
        ['Gemm', ['flat', 'w'], ['logits'], { transB: 1 }],
      ],
      [floatTensor('w', [7, 12], randomValues(84, 2))],
      image,
      'logits',
    );
    const model = loadModel(bytes, 'stacked');
    const cut = findFeatureCut(model);
    expect(cut).toMatchObject({ featureTensor: 'gap', featureDim: 12 });
    expect(extractClassifier(model, cut)?.outputs).toBe(7);
  });

  it('no pooled feature (Conv + Relu): DataError listing the tensors there are', () => {
    const bytes = graphModel(
      [
        ['Conv', ['image', 'k'], ['conv'], { kernel_shape: [3, 3] }],
        ['Relu', ['conv'], ['relu']],
      ],
      [floatTensor('k', [2, 4, 3, 3], randomValues(72, 1))],
      image,
      tensorInfo('relu', FLOAT, ['N', 2, 3, 3]),
    );
    expect(() => findFeatureCut(loadModel(bytes, 'x'), { source: 'conv-relu.onnx' })).toThrow(
      new DataError(
        'no pooled feature tensor found in conv-relu.onnx; pass one explicitly with --feature-tensor; ' +
          'candidates: no pooling or flatten outputs; last tensors: conv (Conv), relu (Relu, [N, 2, 3, 3])',
      ),
    );
  });

  it('an input that is not an image tensor: DataError naming it', () => {
    const bytes = graphModel(
      [['MatMul', ['vector', 'w'], ['y']]],
      [floatTensor('w', [10, 2], randomValues(20, 1))],
      tensorInfo('vector', FLOAT, ['N', 10]),
      'y',
    );
    expect(() => findFeatureCut(loadModel(bytes, 'x'), { source: 'vec.onnx' })).toThrow(
      new DataError('input vector of vec.onnx has shape [N, 10]; an image backbone takes [N, C, H, W]'),
    );
  });
});

// ---- mergeHead ----

/** mergeHead's output must equal softmax(head(cut features)) on the same inputs. */
async function checkMerged(
  backbone: Uint8Array,
  cut: FeatureCut,
  head: HeadWeights,
  input: Float32Array,
  dims: number[],
) {
  const model = loadModel(backbone, 'backbone');
  const merged = mergeHead(backbone, cut, head, { labels: '[]' });
  const features = await runModel(cutAtFeature(model, cut), input, dims);
  const probabilities = await runModel(merged, input, dims, PROBABILITIES);
  expect(probabilities.dims).toEqual([dims[0], head.classes]);
  const expected = headProbabilities(features.data, dims[0]!, head);
  expect(maxAbsDiff(probabilities.data, expected)).toBeLessThan(1e-4);
  // Not trivially uniform: the head must matter.
  expect(Math.max(...expected)).toBeGreaterThan(1.2 / head.classes);
  return merged;
}

describe('mergeHead on the tiny backbone', () => {
  const backbone = buildTinyBackbone();
  const cut = findFeatureCut(loadModel(backbone, 'tiny'));
  const input = randomValues(4 * 3 * 64 * 64, 21);

  it.each([
    ['a linear head', [5]],
    ['a one-hidden-layer head', [16, 5]],
  ])('%s: outputs equal softmax(head(features))', async (_, widths) => {
    await checkMerged(backbone, cut, randomHead(TINY_FEATURES, widths, 7), input, [4, 3, 64, 64]);
  });

  it('is one model: the image input, a `probabilities` output, metadata round-trips', () => {
    const meta = {
      labels: JSON.stringify(['n02085620-Chihuahua', 'n02085782-Japanese_spaniel']),
      preprocess: JSON.stringify({ resizeShorter: 73, cropSize: 64 }),
      provenance: '{"runId":"r-1","note":"é ✓"}',
    };
    const merged = loadModel(mergeHead(backbone, cut, randomHead(TINY_FEATURES, [2], 1), meta), 'merged');
    const graph = merged.graph!;
    expect(graph.input?.map((i) => i.name)).toEqual(['input']);
    expect(graph.output?.map((o) => o.name)).toEqual([PROBABILITIES]);
    expect(
      graph.output?.[0]?.type?.tensorType?.shape?.dim?.map((d) => d.dimParam || Number(d.dimValue)),
    ).toEqual(['N', 2]);
    expect(Object.fromEntries(merged.metadataProps.map((p) => [p.key, p.value]))).toEqual(meta);
    expect(graph.node?.map((n) => n.opType)).toEqual([
      'Conv',
      'Relu',
      'GlobalAveragePool',
      'Flatten',
      'MatMul',
      'Add',
      'Softmax',
    ]);
    expect(merged.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 13]]);
  });

  it('adds a standard opset import when the backbone declares none', async () => {
    const decoded = loadModel(backbone, 'tiny');
    const bare = encodeModel({ ...decoded, opsetImport: [{ domain: 'ai.onnx.ml', version: 2 }] });
    const merged = loadModel(mergeHead(bare, cut, randomHead(TINY_FEATURES, [3], 2), {}), 'merged');
    expect(merged.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([
      ['ai.onnx.ml', 2],
      ['', 13],
    ]);
  });

  it('rejects a head that does not fit the feature', () => {
    const head = randomHead(TINY_FEATURES + 1, [3], 2);
    expect(() => mergeHead(backbone, cut, head, {})).toThrow(
      new InputError(
        `classifier head does not fit: it takes ${TINY_FEATURES + 1} features, the backbone gives ${TINY_FEATURES}`,
      ),
    );
    const broken = randomHead(TINY_FEATURES, [4, 3], 2);
    broken.layers[1]!.inDim = 5;
    expect(() => mergeHead(backbone, cut, broken, {})).toThrow(InputError);
  });
});

// ---- the real int8 MobileNetV2 ----

const MOBILENET = SHARED_BACKBONE;
const IMAGES = 50;
const SIDE = 224;
/** Scale of the int8 graph's quantised pooled tensor 464_quantized (zero point 0). */
const POOL_SCALE = 0.019110053777694702;

/** The model zoo's preprocessing: shorter side 256, centre crop 224, ImageNet mean/std, NCHW. */
async function imagenetTensor(files: string[]): Promise<Float32Array> {
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const plane = SIDE * SIDE;
  const out = new Float32Array(files.length * 3 * plane);
  for (const [n, file] of files.entries()) {
    const { data, info } = await sharp(file)
      .resize(256, 256, { fit: 'outside' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    const left = Math.floor((info.width - SIDE) / 2);
    const top = Math.floor((info.height - SIDE) / 2);
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const p = ((top + y) * info.width + left + x) * info.channels;
        for (let c = 0; c < 3; c++)
          out[(n * 3 + c) * plane + y * SIDE + x] = (data[p + c]! / 255 - mean[c]!) / std[c]!;
      }
    }
  }
  return out;
}

// ---- several backbones and the test-time flip ----

/** The input with each image mirrored left-right (NCHW). */
function mirrored(input: Float32Array, [n, c, h, w]: number[]): Float32Array {
  const out = new Float32Array(input.length);
  for (let plane = 0; plane < n! * c! * h!; plane++) {
    for (let x = 0; x < w!; x++) out[plane * w! + x] = input[plane * w! + (w! - 1 - x)]!;
  }
  return out;
}

/** Row-wise concatenation of two [rows × ·] feature blocks. */
function concatFeatures(a: Float32Array, b: Float32Array, rows: number): Float32Array {
  const [da, db] = [a.length / rows, b.length / rows];
  const out = new Float32Array(a.length + b.length);
  for (let r = 0; r < rows; r++) {
    out.set(a.subarray(r * da, (r + 1) * da), r * (da + db));
    out.set(b.subarray(r * db, (r + 1) * db), r * (da + db) + da);
  }
  return out;
}

describe('mergeBackbones: several backbones and the flip in one graph', () => {
  const dims = [3, 3, 64, 64];
  const input = randomValues(3 * 3 * 64 * 64, 31);
  const tiny = buildTinyBackbone();
  const tinyCut = findFeatureCut(loadModel(tiny, 'tiny'));
  // A second backbone whose tensor names are the tiny one's: only prefixing keeps them apart.
  const names = loadModel(tiny, 'tiny').graph!.node!;
  const other = graphModel(
    [
      ['GlobalAveragePool', ['input'], [names[2]!.output![0]!]],
      ['Flatten', [names[2]!.output![0]!], [names[3]!.output![0]!]],
      ['Gemm', [names[3]!.output![0]!, 'w'], ['logits']],
    ],
    [floatTensor('w', [3, 4], randomValues(12, 3))],
    tensorInfo('input', FLOAT, ['N', 3, 64, 64]),
    'logits',
  );
  const otherCut = findFeatureCut(loadModel(other, 'other'));

  it('two backbones with clashing names: outputs equal softmax(head(concatenated features)), names prefixed', async () => {
    const head = randomHead(TINY_FEATURES + 3, [6], 11);
    const merged = mergeBackbones(
      [
        { bytes: tiny, cut: tinyCut },
        { bytes: other, cut: otherCut },
      ],
      head,
      {},
    );
    const graph = loadModel(merged, 'merged').graph!;
    expect(graph.input?.map((i) => i.name)).toEqual(['input']);
    const outputs = graph.node!.flatMap((n) => n.output ?? []);
    expect(new Set(outputs).size).toBe(outputs.length);
    expect(outputs.filter((o) => o.startsWith('backbone0_')).length).toBeGreaterThan(2);
    expect(outputs.filter((o) => o.startsWith('backbone1_')).length).toBe(2);
    const a = await runModel(cutAtFeature(loadModel(tiny, 'tiny'), tinyCut), input, dims);
    const b = await runModel(cutAtFeature(loadModel(other, 'other'), otherCut), input, dims);
    const expected = headProbabilities(concatFeatures(a.data, b.data, 3), 3, head);
    const probabilities = await runModel(merged, input, dims, PROBABILITIES);
    expect(maxAbsDiff(probabilities.data, expected)).toBeLessThan(1e-4);
    expect(Math.max(...expected)).toBeGreaterThan(1.2 / head.classes);
  });

  it('the same backbone twice is two prefixed copies, not one', async () => {
    const head = randomHead(2 * TINY_FEATURES, [4], 12);
    const parts = [
      { bytes: tiny, cut: tinyCut },
      { bytes: tiny, cut: tinyCut },
    ];
    const f = await runModel(cutAtFeature(loadModel(tiny, 'tiny'), tinyCut), input, dims);
    const probabilities = await runModel(mergeBackbones(parts, head, {}), input, dims, PROBABILITIES);
    expect(
      maxAbsDiff(probabilities.data, headProbabilities(concatFeatures(f.data, f.data, 3), 3, head)),
    ).toBeLessThan(1e-4);
  });

  it('flip: probabilities are softmax of the mean logits of the image and its mirror', async () => {
    const head = randomHead(TINY_FEATURES, [5], 13);
    const model = loadModel(tiny, 'tiny');
    const plain = await runModel(cutAtFeature(model, tinyCut), input, dims);
    const mirror = await runModel(cutAtFeature(model, tinyCut), mirrored(input, dims), dims);
    // A linear head: the mean of the logits is the head on the mean features.
    const meanFeatures = plain.data.map((v, i) => (v + mirror.data[i]!) / 2);
    const expected = headProbabilities(meanFeatures, 3, head);
    const flipped = await runModel(
      mergeHead(tiny, tinyCut, head, {}, { flip: true }),
      input,
      dims,
      PROBABILITIES,
    );
    expect(flipped.dims).toEqual([3, 5]);
    expect(maxAbsDiff(flipped.data, expected)).toBeLessThan(1e-4);
    // The mirror matters (the tiny backbone's stripe orientations see it): the flip is no no-op.
    expect(maxAbsDiff(plain.data, mirror.data)).toBeGreaterThan(1e-2);
    expect(maxAbsDiff(flipped.data, headProbabilities(plain.data, 3, head))).toBeGreaterThan(4e-4);
  });

  it('backbones with different inputs are refused, naming both shapes', () => {
    const small = buildTinyBackbone({ inputSize: 32 });
    const smallCut = findFeatureCut(loadModel(small, 'small'));
    expect(() =>
      mergeBackbones(
        [
          { bytes: tiny, cut: tinyCut },
          { bytes: small, cut: smallCut },
        ],
        randomHead(2 * TINY_FEATURES, [2], 1),
        {},
      ),
    ).toThrow(/backbone 0 takes \[3,64,64\], another takes \[3,32,32\]/);
  });
});

describeShared('graph tools on the real int8 MobileNetV2', () => {
  let bytes: Uint8Array;
  let model: Onnx.ModelProto;
  let cut: FeatureCut;
  let input: Float32Array;
  let features: Output;
  let logits: Float32Array;
  let quantizedPool: Uint8Array;
  const dims = [IMAGES, 3, SIDE, SIDE];

  beforeAll(async () => {
    bytes = await readFile(MOBILENET);
    model = loadModel(bytes, MOBILENET);
    cut = findFeatureCut(model, { source: MOBILENET });
    // One image of each of the first 50 breeds.
    const breeds = (await readdir(SHARED_SAMPLE_DIR)).sort().slice(0, IMAGES);
    const files = await Promise.all(
      breeds.map(
        async (b) => `${SHARED_SAMPLE_DIR}/${b}/${(await readdir(`${SHARED_SAMPLE_DIR}/${b}`)).sort()[0]}`,
      ),
    );
    input = await imagenetTensor(files);
    features = await runModel(cutAtFeature(model, cut), input, dims);
    // The original, also exposing its quantised pooled tensor.
    const probe = loadModel(bytes, MOBILENET);
    probe.graph?.output?.push(tensorInfo('464_quantized', UINT8, ['batch_size', 1280, 1, 1]));
    const session = await ort.InferenceSession.create(encodeModel(probe), { intraOpNumThreads: 1 });
    const result = await session.run({ input: new ort.Tensor('float32', input, dims) });
    logits = result.output!.data as Float32Array;
    quantizedPool = result['464_quantized']!.data as Uint8Array;
    await session.release();
  });

  it('finds the 1280-d pooled feature behind the QLinear classifier', () => {
    expect(cut).toEqual({
      inputName: 'input',
      inputShape: [-1, 3, 224, 224],
      featureTensor: '464_quantized',
      featureDim: 1280,
    });
  });

  it('cuts to a float feature: GlobalAveragePool of the dequantised last conv, pruned of the classifier', () => {
    const ops = loadModel(cutAtFeature(model, cut), 'cut').graph?.node?.map((n) => n.opType) ?? [];
    expect(ops.slice(-3)).toEqual(['DequantizeLinear', 'GlobalAveragePool', 'Flatten']);
    expect(ops).not.toContain('QLinearMatMul');
    expect(ops).not.toContain('QLinearGlobalAveragePool');
    expect(features.dims).toEqual([IMAGES, 1280]);
    // The original pools in int8 and rounds: within half a quantisation step of the float pool.
    const dequantized = Float32Array.from(quantizedPool, (q) => q * POOL_SCALE);
    expect(maxAbsDiff(features.data, dequantized)).toBeLessThan(0.5 * POOL_SCALE + 1e-6);
  });

  it('the Reshape of the quantised pool, named explicitly, gives the same cut', async () => {
    const explicit = findFeatureCut(model, { featureTensor: '472_quantized' });
    expect(explicit.featureDim).toBe(1280);
    const again = await runModel(cutAtFeature(model, explicit), input.subarray(0, 2 * 3 * SIDE * SIDE), [
      2,
      3,
      SIDE,
      SIDE,
    ]);
    expect(Array.from(again.data)).toEqual(Array.from(features.data.subarray(0, 2 * 1280)));
  });

  it('extracts the classifier: feature·W + b reproduces the int8 logits on 50 real photos', () => {
    const cls = extractClassifier(model, cut)!;
    expect(cls.outputs).toBe(1000);
    expect(cls.weights.length).toBe(1280 * 1000);
    const mine = classifierLogits(features.data, IMAGES, cls);
    const reference = argmaxRows(logits, 1000);
    const agree = argmaxRows(mine, 1000).filter((k, i) => k === reference[i]).length;
    const diffs = mine.map((v, i) => Math.abs(v - logits[i]!));
    const meanDiff = diffs.reduce((s, d) => s + d, 0) / diffs.length;
    // Measured: 50/50, max 0.183, mean 0.049. The int8 output step is 0.160 and the logits span
    // 20–34, so this is the int8 graph's own rounding; ignoring the bias zero point (112) would
    // shift every logit by 0.121 and fail both bounds.
    expect(agree).toBeGreaterThanOrEqual(49);
    expect(Math.max(...diffs)).toBeLessThan(0.25);
    expect(meanDiff).toBeLessThan(0.07);
  });

  it.each([
    ['a linear head', [120]],
    ['a one-hidden-layer head', [64, 120]],
  ])('mergeHead with %s: outputs equal softmax(head(features))', async (_, widths) => {
    const rows = 6;
    const merged = await checkMerged(
      bytes,
      cut,
      randomHead(1280, widths, 3),
      input.subarray(0, rows * 3 * SIDE * SIDE),
      [rows, 3, SIDE, SIDE],
    );
    const graph = loadModel(merged, 'merged').graph!;
    expect(graph.input?.map((i) => i.name)).toEqual(['input']);
    expect(graph.output?.map((o) => o.name)).toEqual([PROBABILITIES]);
  });

  it('rejects an unknown feature tensor, listing the pooled candidates', () => {
    expect(() => findFeatureCut(model, { featureTensor: 'pool', source: 'mobilenet' })).toThrow(
      new DataError(
        'feature tensor pool is not computed by any node of mobilenet; candidates: ' +
          '464_quantized (QLinearGlobalAveragePool, 1280 features), 472_quantized (Reshape, 1280 features)',
      ),
    );
  });
});
