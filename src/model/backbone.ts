import { DataError } from '../errors.ts';
import { foldConstant } from './constant-fold.ts';
import {
  type Dim,
  FLOAT,
  floatAttr,
  infoShape,
  intAttr,
  intsAttr,
  type Onnx,
  tensorValues,
  toInt,
} from './onnx-io.ts';
import type { BackboneClassifier, FeatureCut } from './types.ts';

// Reading an ImageNet-style classifier: where its pooled feature is, how wide it is, how to get
// it in float when the graph is quantised, and the classifier that sits on top of it.

/** Lookups over one graph. */
export interface GraphIndex {
  graph: Onnx.IGraphProto;
  source: string;
  producer: Map<string, Onnx.INodeProto>;
  /** Initializers and Constant-node values: where exporters keep weights. */
  constants: Map<string, Onnx.ITensorProto>;
  initializerNames: Set<string>;
  shapes: Map<string, (Dim | undefined)[]>;
}

export function indexGraph(model: Onnx.IModelProto, source: string): GraphIndex {
  const graph = model.graph ?? {};
  const producer = new Map<string, Onnx.INodeProto>();
  const constants = new Map<string, Onnx.ITensorProto>();
  for (const node of graph.node ?? []) {
    for (const out of node.output ?? []) producer.set(out, node);
    const value = node.opType === 'Constant' ? node.attribute?.find((a) => a.name === 'value')?.t : undefined;
    if (value && node.output?.[0]) constants.set(node.output[0], value);
  }
  for (const t of graph.initializer ?? []) constants.set(t.name ?? '', t);
  const shapes = new Map<string, (Dim | undefined)[]>();
  for (const info of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    const shape = infoShape(info);
    if (info.name && shape) shapes.set(info.name, shape);
  }
  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  return { graph, source, producer, constants, initializerNames, shapes };
}

// ---- The float feature ----

/** How the cut computes the float feature from tensors of the original graph. */
export type FeatureSource =
  | { kind: 'float'; tensor: string }
  /** A quantised tensor: DequantizeLinear with its own scale and zero point. */
  | { kind: 'dequantize'; tensor: string; scale: string; zeroPoint: string }
  /** QLinearGlobalAveragePool: pool the dequantised input in float instead of re-quantising. */
  | { kind: 'pool-dequantized'; tensor: string; scale: string; zeroPoint: string };

/** Input indices of the output scale and zero point of the quantised ops. */
const QUANT_OUTPUT: Record<string, [number, number]> = {
  QLinearConv: [6, 7],
  QLinearMatMul: [6, 7],
  QLinearAdd: [6, 7],
  QLinearMul: [6, 7],
  QLinearAveragePool: [3, 4],
};
/** Ops that change only the shape: the pooled values pass through them unchanged. */
const RESHAPING = ['Flatten', 'Reshape', 'Squeeze', 'Identity'];
/** Between the pooled feature and the classifier: reshapes and quantisation wrappers. */
const FEATURE_WRAPPERS = new Set([...RESHAPING, 'QuantizeLinear', 'DequantizeLinear']);
/** Between the classifier and the graph output. */
const OUTPUT_WRAPPERS = new Set([...FEATURE_WRAPPERS, 'Softmax', 'LogSoftmax']);

export function floatSource(ix: GraphIndex, tensor: string): FeatureSource {
  const node = ix.producer.get(tensor);
  const op = node?.opType ?? '';
  const input = (i: number) => node?.input?.[i] ?? '';
  if (op === 'QuantizeLinear') return floatSource(ix, input(0));
  if (op === 'QLinearGlobalAveragePool') {
    return { kind: 'pool-dequantized', tensor: input(0), scale: input(1), zeroPoint: input(2) };
  }
  const q = QUANT_OUTPUT[op];
  if (q) return { kind: 'dequantize', tensor, scale: input(q[0]), zeroPoint: input(q[1]) };
  if (op === 'DequantizeLinear' || RESHAPING.includes(op)) {
    const inner = floatSource(ix, input(0));
    // Keep this tensor unless its input was quantised and a better float origin exists.
    const plain = inner.kind === 'dequantize' || (inner.kind === 'float' && inner.tensor === input(0));
    return plain ? { kind: 'float', tensor } : inner;
  }
  return { kind: 'float', tensor };
}

// ---- Finding the feature ----

interface ClassifierNodes {
  matmul: Onnx.INodeProto;
  add: Onnx.INodeProto | undefined;
}

/** The tensors from `tensor` back through nodes of `ops`, ending at the first one not made by them. */
function walkBack(ix: GraphIndex, tensor: string, ops: Set<string>): string[] {
  const passed = [tensor];
  for (;;) {
    const node = ix.producer.get(passed.at(-1) ?? '');
    const next = node?.input?.[0];
    // passed.includes: a cycle, possible only in a malformed graph, ends the walk.
    if (!node || !ops.has(node.opType ?? '') || next === undefined || passed.includes(next)) return passed;
    passed.push(next);
  }
}

/** Gemm / MatMul / QLinearMatMul with constant weights, optionally followed by a bias Add. */
function classifierAt(ix: GraphIndex, tensor: string): ClassifierNodes | undefined {
  let node = ix.producer.get(tensor);
  let add: Onnx.INodeProto | undefined;
  const dataOperand = ADD_OPERANDS[node?.opType ?? '']?.find(
    (i) => !foldConstant(ix, node?.input?.[i] ?? ''),
  );
  if (node && dataOperand !== undefined) {
    add = node;
    node = ix.producer.get(node.input?.[dataOperand] ?? '');
  }
  if (!node || classifierRows(ix, node) === undefined) return undefined;
  return { matmul: node, add };
}

/** Operand indices of Add and QLinearAdd (QLinearAdd's B starts after A's scale and zero point). */
const ADD_OPERANDS: Record<string, number[]> = { Add: [0, 1], QLinearAdd: [0, 3] };

/** The classifier's input width from its weight shape, or undefined when `node` is no classifier. */
function classifierRows(ix: GraphIndex, node: Onnx.INodeProto): number | undefined {
  const weight = (i: number) => foldConstant(ix, node.input?.[i] ?? '')?.dims;
  switch (node.opType) {
    case 'Gemm': {
      const dims = weight(1);
      if (!dims || intAttr(node, 'transA', 0) !== 0) return undefined;
      return intAttr(node, 'transB', 0) ? dims[1] : dims[0];
    }
    case 'MatMul':
      return weight(1)?.length === 2 ? weight(1)?.[0] : undefined;
    case 'QLinearMatMul':
      return weight(3)?.length === 2 ? weight(3)?.[0] : undefined;
    default:
      return undefined;
  }
}

function isPooling(ix: GraphIndex, node: Onnx.INodeProto | undefined): boolean {
  if (node?.opType === 'GlobalAveragePool' || node?.opType === 'QLinearGlobalAveragePool') return true;
  if (node?.opType !== 'ReduceMean') return false;
  // Opset 18 moved axes from an attribute to an optional second input.
  const axesInput = node.input?.[1] ? ix.constants.get(node.input[1]) : undefined;
  const axes = intsAttr(node, 'axes') ?? (axesInput ? Array.from(tensorValues(axesInput)) : []);
  const sorted = axes.sort((a, b) => a - b).join(',');
  return sorted === '2,3' || sorted === '-2,-1';
}

/** The classifier on top of `featureTensor`, when the feature reaches it only through wrappers. */
function classifierFor(ix: GraphIndex, featureTensor: string): ClassifierNodes | undefined {
  for (const out of ix.graph.output ?? []) {
    const top = walkBack(ix, out.name ?? '', OUTPUT_WRAPPERS).at(-1) ?? '';
    const cls = classifierAt(ix, top);
    if (cls && walkBack(ix, cls.matmul.input?.[0] ?? '', FEATURE_WRAPPERS).includes(featureTensor))
      return cls;
  }
  return undefined;
}

/** The pooled tensor under the last classifier (or under the output, for a feature extractor). */
function detectFeature(ix: GraphIndex): string | undefined {
  for (const out of ix.graph.output ?? []) {
    const top = walkBack(ix, out.name ?? '', OUTPUT_WRAPPERS).at(-1) ?? '';
    const start = classifierAt(ix, top)?.matmul.input?.[0] ?? top;
    const pooled = walkBack(ix, start, FEATURE_WRAPPERS).at(-1) ?? '';
    if (isPooling(ix, ix.producer.get(pooled))) return pooled;
  }
  return undefined;
}

// ---- Sizes ----

/** Ops whose output has as many channels as their first input. */
const CHANNEL_PRESERVING = new Set([
  'Relu',
  'Clip',
  'LeakyRelu',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'BatchNormalization',
  'Add',
  'Mul',
  'Sum',
  'Dropout',
  'Identity',
  'QuantizeLinear',
  'DequantizeLinear',
  'QLinearAdd',
  'QLinearMul',
]);

function channels(ix: GraphIndex, tensor: string): number | undefined {
  const known = ix.shapes.get(tensor)?.[1];
  if (typeof known === 'number') return known;
  const node = ix.producer.get(tensor);
  const op = node?.opType ?? '';
  const weightIndex = op === 'Conv' ? 1 : op === 'QLinearConv' ? 3 : undefined;
  if (weightIndex !== undefined) {
    const dims = ix.constants.get(node?.input?.[weightIndex] ?? '')?.dims;
    return dims?.[0] === undefined ? undefined : toInt(dims[0]);
  }
  return CHANNEL_PRESERVING.has(op) ? channels(ix, node?.input?.[0] ?? '') : undefined;
}

/** The flattened width of `tensor` from declared shapes and weight shapes, when they tell. */
function staticWidth(ix: GraphIndex, tensor: string): number | undefined {
  const shape = ix.shapes.get(tensor);
  const rest = shape?.slice(1) ?? [];
  if (shape && shape.length >= 2 && rest.every((d) => typeof d === 'number')) {
    return rest.reduce<number>((n, d) => n * d, 1);
  }
  const node = ix.producer.get(tensor);
  if (isPooling(ix, node)) return channels(ix, node?.input?.[0] ?? '');
  if (node && FEATURE_WRAPPERS.has(node.opType ?? '')) return staticWidth(ix, node.input?.[0] ?? '');
  return undefined;
}

// ---- Input and candidates ----

interface ImageInput {
  name: string;
  inputShape: number[];
}

function imageInput(ix: GraphIndex): ImageInput {
  const inputs = (ix.graph.input ?? []).filter((i) => !ix.initializerNames.has(i.name ?? ''));
  const names = inputs.map((i) => i.name).join(', ');
  const [input] = inputs;
  if (!input || inputs.length !== 1) {
    throw new DataError(`${ix.source} has ${inputs.length} inputs (${names}); a backbone takes one image`);
  }
  const name = input.name ?? '';
  const shape = infoShape(input);
  if (shape?.length !== 4) {
    throw new DataError(
      `input ${name} of ${ix.source} has shape ${formatShape(shape)}; an image backbone takes [N, C, H, W]`,
    );
  }
  const elemType = input.type?.tensorType?.elemType;
  if (elemType !== FLOAT) {
    throw new DataError(`input ${name} of ${ix.source} has element type ${elemType}; expected float32`);
  }
  return { name, inputShape: shape.map((d, i) => (i > 0 && typeof d === 'number' ? d : -1)) };
}

function formatShape(shape: (Dim | undefined)[] | undefined): string {
  return shape ? `[${shape.map((d) => d ?? '?').join(', ')}]` : 'unknown';
}

const CANDIDATE_OPS = new Set([
  'GlobalAveragePool',
  'QLinearGlobalAveragePool',
  'GlobalMaxPool',
  'ReduceMean',
  'Flatten',
  'Reshape',
  'Squeeze',
]);
const MAX_CANDIDATES = 20;

/** Tensors a user might mean, for error messages: pooling and flattening outputs first. */
function candidateList(ix: GraphIndex): string {
  const nodes = ix.graph.node ?? [];
  const pooled = nodes.filter((n) => CANDIDATE_OPS.has(n.opType ?? ''));
  const shown = (pooled.length > 0 ? pooled : nodes.slice(-5)).slice(-MAX_CANDIDATES);
  const items = shown.flatMap((n) =>
    (n.output ?? []).map((name) => {
      const shape = ix.shapes.get(name);
      const width = staticWidth(ix, name);
      const size = shape ? `, ${formatShape(shape)}` : width ? `, ${width} features` : '';
      return `${name} (${n.opType}${size})`;
    }),
  );
  const prefix = pooled.length > 0 ? '' : 'no pooling or flatten outputs; last tensors: ';
  return items.length > 0 ? prefix + items.join(', ') : 'none';
}

// ---- Public: the cut and the classifier ----

export interface FeatureCutOptions {
  /** Cut here instead of at the automatically found pooled feature. */
  featureTensor?: string;
  /** Names the model in error messages (a path or S3 key). */
  source?: string;
}

/** The cut except perhaps its width, which only running the graph may tell. */
export function locateFeature(
  model: Onnx.IModelProto,
  opts: FeatureCutOptions = {},
): { cut: Omit<FeatureCut, 'featureDim'>; featureDim: number | undefined } {
  const ix = indexGraph(model, opts.source ?? 'the model');
  const input = imageInput(ix);
  const featureTensor = opts.featureTensor ?? detectFeature(ix);
  if (featureTensor === undefined) {
    throw new DataError(
      `no pooled feature tensor found in ${ix.source}; pass one explicitly with --feature-tensor; ` +
        `candidates: ${candidateList(ix)}`,
    );
  }
  if (!ix.producer.has(featureTensor)) {
    throw new DataError(
      `feature tensor ${featureTensor} is not computed by any node of ${ix.source}; ` +
        `candidates: ${candidateList(ix)}`,
    );
  }
  const classifier = classifierFor(ix, featureTensor);
  const featureDim = staticWidth(ix, featureTensor) ?? (classifier && classifierRows(ix, classifier.matmul));
  return { cut: { inputName: input.name, inputShape: input.inputShape, featureTensor }, featureDim };
}

/**
 * The pooled feature of an ImageNet-style classifier, found or as named. Throws when its width
 * is not declared in the graph; findFeatureCutAsync measures it instead.
 */
export function findFeatureCut(model: Onnx.IModelProto, opts: FeatureCutOptions = {}): FeatureCut {
  const { cut, featureDim } = locateFeature(model, opts);
  if (featureDim === undefined) {
    throw new DataError(
      `the width of feature tensor ${cut.featureTensor} in ${opts.source ?? 'the model'} is not declared ` +
        'in the graph; findFeatureCutAsync measures it by running the model',
    );
  }
  return { ...cut, featureDim };
}

/** The backbone's own classifier on top of the cut, dequantised; undefined when there is none. */
export function extractClassifier(model: Onnx.IModelProto, cut: FeatureCut): BackboneClassifier | undefined {
  const ix = indexGraph(model, 'the model');
  const cls = classifierFor(ix, cut.featureTensor);
  if (!cls) return undefined;
  const linear = dequantiseLinear(ix, cls.matmul);
  if (!linear) return undefined;
  const { weights, rows, outputs } = linear;
  if (rows !== cut.featureDim) {
    throw new DataError(
      `classifier ${cls.matmul.name} takes ${rows} features, the cut gives ${cut.featureDim}`,
    );
  }
  const bias = new Float32Array(outputs);
  if (linear.bias) bias.set(linear.bias);
  const addBias = cls.add && dequantiseBias(ix, cls.add, outputs);
  if (cls.add && !addBias) return undefined;
  if (addBias) for (let o = 0; o < outputs; o++) bias[o] = bias[o]! + addBias[o]!;
  return { weights, bias, outputs };
}

interface Linear {
  weights: Float32Array;
  bias: Float64Array | undefined;
  rows: number;
  outputs: number;
}

function dequantiseLinear(ix: GraphIndex, node: Onnx.INodeProto): Linear | undefined {
  const values = (i: number) => foldConstant(ix, node.input?.[i] ?? '')?.values();
  const weightIndex = node.opType === 'QLinearMatMul' ? 3 : 1;
  const w = foldConstant(ix, node.input?.[weightIndex] ?? '');
  const [d0, d1] = w?.dims ?? [];
  const raw = w?.values();
  if (!raw || d0 === undefined || d1 === undefined) return undefined;
  if (node.opType === 'Gemm') {
    // Y = alpha·A·B' + beta·C, B' = B or Bᵀ.
    const transB = intAttr(node, 'transB', 0) !== 0;
    const alpha = floatAttr(node, 'alpha', 1);
    const beta = floatAttr(node, 'beta', 1);
    const [rows, outputs] = transB ? [d1, d0] : [d0, d1];
    const weights = new Float32Array(rows * outputs);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < outputs; o++) {
        weights[r * outputs + o] = alpha * raw[transB ? o * rows + r : r * outputs + o]!;
      }
    }
    const hasC = Boolean(node.input?.[2]);
    const c = values(2);
    if (hasC && !c) return undefined;
    const bias = c && broadcast(c, outputs, node).map((x) => beta * x);
    return { weights, bias, rows, outputs };
  }
  if (node.opType === 'QLinearMatMul') {
    // Per-column (or per-tensor) scale and zero point: W = (q − zp[o]) · scale[o].
    const scale = values(4);
    const zeroPoint = values(5);
    if (!scale || !zeroPoint) return undefined;
    const s = broadcast(scale, d1, node);
    const z = broadcast(zeroPoint, d1, node);
    // A plain loop: Float32Array.from with a map function took 0.4 s for MobileNetV2's 1.28M weights.
    const weights = new Float32Array(raw.length);
    for (let r = 0, i = 0; r < d0; r++)
      for (let o = 0; o < d1; o++, i++) weights[i] = (raw[i]! - z[o]!) * s[o]!;
    return { weights, bias: undefined, rows: d0, outputs: d1 };
  }
  return { weights: new Float32Array(raw), bias: undefined, rows: d0, outputs: d1 };
}

/** The constant operand of Add, or QLinearAdd's dequantised (q − zero point) · scale. */
function dequantiseBias(ix: GraphIndex, node: Onnx.INodeProto, outputs: number): Float64Array | undefined {
  const operands = ADD_OPERANDS[node.opType ?? ''] ?? [];
  const constant = (i: number) => foldConstant(ix, node.input?.[i] ?? '');
  const index = operands.find((i) => constant(i)) ?? -1;
  const [q, scale, zeroPoint] = [constant(index), constant(index + 1), constant(index + 2)];
  if (!q) return undefined;
  const bias = broadcast(q.values(), outputs, node);
  if (node.opType === 'Add') return bias;
  if (!scale || !zeroPoint) return undefined;
  const s = broadcast(scale.values(), outputs, node);
  const z = broadcast(zeroPoint.values(), outputs, node);
  return bias.map((x, o) => (x - z[o]!) * s[o]!);
}

function broadcast(values: Float64Array, n: number, node: Onnx.INodeProto): Float64Array {
  if (values.length === n) return values;
  if (values.length === 1) return new Float64Array(n).fill(values[0]!);
  throw new DataError(`${node.opType} ${node.name}: a constant of ${values.length} values for ${n} outputs`);
}
