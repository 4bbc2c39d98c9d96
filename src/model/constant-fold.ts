import {
  BFLOAT16,
  DOUBLE,
  FLOAT,
  FLOAT16,
  intAttr,
  intsAttr,
  type Onnx,
  tensorValues,
  toInt,
} from './onnx-io.ts';

// A classifier's weights are not always a plain initializer: float16 exports keep them behind a
// Cast, QDQ int8 exports behind a DequantizeLinear, and converters add Identity, Transpose and
// Reshape. Those chains of initializers are constants; this folds them, in float64.

export interface FoldedConstant {
  dims: number[];
  /** Decoded on first use (a classifier's weights are millions of values; dims often suffice). */
  values: () => Float64Array;
}

export interface ConstantLookup {
  constants: Map<string, Onnx.ITensorProto>;
  producer: Map<string, Onnx.INodeProto>;
}

/** Float types a Cast may produce without changing what the weights mean. */
const FLOAT_TYPES = new Set([FLOAT, FLOAT16, DOUBLE, BFLOAT16]);
/** Deeper chains than this are not a weight's storage wrapper. */
const MAX_DEPTH = 8;

/** The value of `name` when it is an initializer, a Constant, or one through foldable ops. */
export function foldConstant(ix: ConstantLookup, name: string, depth = 0): FoldedConstant | undefined {
  const tensor = ix.constants.get(name);
  if (tensor) return lazy((tensor.dims ?? []).map(toInt), () => tensorValues(tensor));
  const node = ix.producer.get(name);
  if (!node || depth >= MAX_DEPTH) return undefined;
  const operand = (i: number) => {
    const input = node.input?.[i];
    return input ? foldConstant(ix, input, depth + 1) : undefined;
  };
  const x = operand(0);
  if (!x) return undefined;
  switch (node.opType) {
    case 'Identity':
      return x;
    case 'Cast':
      return FLOAT_TYPES.has(intAttr(node, 'to', 0)) ? x : undefined;
    case 'DequantizeLinear':
      return dequantize(node, x, operand(1), node.input?.[2] ? operand(2) : null);
    case 'Transpose':
      return transpose(x, intsAttr(node, 'perm') ?? x.dims.map((_, i) => x.dims.length - 1 - i));
    case 'Reshape': {
      const shape = operand(1);
      const dims = shape && reshapeDims(x.dims, Array.from(shape.values()));
      return dims && lazy(dims, x.values);
    }
    default:
      return undefined;
  }
}

function lazy(dims: number[], compute: () => Float64Array): FoldedConstant {
  let cached: Float64Array | undefined;
  return {
    dims,
    values: () => {
      cached ??= compute();
      return cached;
    },
  };
}

/** (x − zero point) · scale, per tensor or per slice along `axis` (default 1). */
function dequantize(
  node: Onnx.INodeProto,
  x: FoldedConstant,
  scale: FoldedConstant | undefined,
  zeroPoint: FoldedConstant | undefined | null,
): FoldedConstant | undefined {
  if (!scale || zeroPoint === undefined) return undefined;
  const rank = x.dims.length;
  const axis = (intAttr(node, 'axis', 1) + rank) % Math.max(rank, 1);
  const slices = scale.dims.length === 0 ? 1 : (scale.dims[0] ?? 1);
  if (slices !== 1 && x.dims[axis] !== slices) return undefined;
  const inner = x.dims.slice(axis + 1).reduce((n, d) => n * d, 1);
  return lazy(x.dims, () => {
    const q = x.values();
    const s = scale.values();
    const z = zeroPoint?.values();
    return q.map((v, i) => {
      const k = slices === 1 ? 0 : Math.floor(i / inner) % slices;
      return (v - (z?.[k] ?? 0)) * s[k]!;
    });
  });
}

function transpose(x: FoldedConstant, perm: number[]): FoldedConstant | undefined {
  const rank = x.dims.length;
  if (perm.length !== rank || [...perm].sort().some((p, i) => p !== i)) return undefined;
  const dims = perm.map((p) => x.dims[p]!);
  const strides = x.dims.map((_, i) => x.dims.slice(i + 1).reduce((n, d) => n * d, 1));
  return lazy(dims, () => {
    const src = x.values();
    const out = new Float64Array(src.length);
    const index = new Array<number>(rank).fill(0);
    for (let o = 0; o < out.length; o++) {
      let from = 0;
      for (let a = 0; a < rank; a++) from += index[a]! * strides[perm[a]!]!;
      out[o] = src[from]!;
      for (let a = rank - 1; a >= 0; a--) {
        index[a]!++;
        if (index[a]! < dims[a]!) break;
        index[a] = 0;
      }
    }
    return out;
  });
}

/** Reshape's target: 0 copies the input's dimension, one −1 takes what is left. */
function reshapeDims(from: number[], shape: number[]): number[] | undefined {
  const total = from.reduce((n, d) => n * d, 1);
  const dims = shape.map((d, i) => (d === 0 ? (from[i] ?? 0) : d));
  const known = dims.filter((d) => d !== -1).reduce((n, d) => n * d, 1);
  const free = dims.filter((d) => d === -1).length;
  if (free > 1 || known <= 0) return undefined;
  const out = dims.map((d) => (d === -1 ? total / known : d));
  return out.every(Number.isInteger) && out.reduce((n, d) => n * d, 1) === total ? out : undefined;
}
