import onnxProto, { type onnx as Onnx } from 'onnx-proto';
import { DataError } from '../errors.ts';

// Reading and writing ONNX protobufs: decoding with a useful error, protobuf int64 narrowing,
// tensor data in every encoding the spec allows, and small builders for new nodes and tensors.

// onnx-proto is CommonJS whose module.exports is the protobufjs root: its namespace hangs off
// the default import under ESM.
const { onnx } = onnxProto;

export type { Onnx };

type Int64 = number | { low: number; high: number; unsigned: boolean };

const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

/** A protobuf int64 as a JS number; protobufjs hands out Long objects when `long` is installed. */
export function toInt(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  const high = v.unsigned ? v.high >>> 0 : v.high;
  const n = high * 2 ** 32 + (v.low >>> 0);
  if (!Number.isSafeInteger(n)) throw new DataError(`int64 value ${n} is out of the safe integer range`);
  return n;
}

/**
 * Decodes an ONNX model. protobuf decoding alone accepts surprising inputs (an empty buffer is a
 * valid empty message), so a model also needs a graph with nodes, inputs and outputs.
 */
export function loadModel(bytes: Uint8Array, source: string): Onnx.ModelProto {
  const fail = (reason: string) =>
    new DataError(`${source} is not an ONNX model: ${reason}. ${describeBytes(bytes)}`);
  if (bytes.length === 0) throw fail('the file is empty (0 bytes)');
  let model: Onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw fail(`protobuf decoding failed (${err instanceof Error ? err.message : String(err)})`);
  }
  const graph = model.graph;
  if (!graph) throw fail('no graph in the protobuf message');
  if (toInt(model.irVersion) < 3 || model.opsetImport.length === 0) {
    throw fail(`no IR version or opset import (ir_version ${toInt(model.irVersion)})`);
  }
  if (!graph.node?.length || !graph.input?.length || !graph.output?.length) {
    throw fail('the graph has no nodes, inputs or outputs');
  }
  return model;
}

/** A hint naming what the bytes look like, for the usual wrong downloads. */
function describeBytes(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 64));
  const text = head.toString('latin1').trimStart().toLowerCase();
  let looks = 'unrecognised binary data';
  if (bytes.length === 0) return 'Expected a binary ONNX ModelProto (.onnx).';
  if (head[0] === 0xff && head[1] === 0xd8) looks = 'a JPEG image';
  else if (text.startsWith('\x89png')) looks = 'a PNG image';
  else if (text.startsWith('<')) looks = 'an HTML/XML page (an error or login page instead of the file?)';
  else if (text.startsWith('version https://git-lfs')) looks = 'a Git LFS pointer (run git lfs pull)';
  else if (head[0] === 0x1f && head[1] === 0x8b) looks = 'gzip data (unpack it first)';
  else if (text.startsWith('pk\x03\x04')) looks = 'a zip archive (unpack it first)';
  else if (/^[\x20-\x7e\s]+$/.test(head.toString('latin1'))) looks = 'plain text';
  return `Expected a binary ONNX ModelProto (.onnx); the ${bytes.length} bytes look like ${looks}.`;
}

export function encodeModel(model: Onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

// ---- Tensor data ----

/** An initializer's values as float64 (exact for every integer type ONNX quantisation uses). */
export function tensorValues(t: Onnx.ITensorProto): Float64Array {
  const name = t.name ?? '(unnamed)';
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new DataError(`tensor ${name} keeps its data in an external file, which is not supported`);
  }
  const count = (t.dims ?? []).reduce<number>((n, d) => n * toInt(d), 1);
  const type = t.dataType ?? DataType.UNDEFINED;
  const reader = RAW_READERS[type];
  if (!reader) throw new DataError(`tensor ${name}: unsupported data type ${DataType[type] ?? type}`);
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out = new Float64Array(raw.byteLength / reader.size);
    for (let i = 0; i < out.length; i++) out[i] = reader.read(view, i * reader.size);
    return checkCount(out, count, name);
  }
  // Without raw_data each type has its own repeated field; the small integer types use int32_data.
  const typed =
    type === DataType.FLOAT
      ? t.floatData
      : type === DataType.DOUBLE
        ? t.doubleData
        : type === DataType.INT64
          ? t.int64Data?.map(toInt)
          : type === DataType.FLOAT16
            ? t.int32Data?.map(halfToFloat)
            : t.int32Data;
  return checkCount(Float64Array.from(typed ?? []), count, name);
}

function checkCount(values: Float64Array, count: number, name: string): Float64Array {
  if (values.length !== count) {
    throw new DataError(`tensor ${name} holds ${values.length} values but its shape needs ${count}`);
  }
  return values;
}

const RAW_READERS: Partial<Record<number, { size: number; read: (v: DataView, o: number) => number }>> = {
  [DataType.FLOAT]: { size: 4, read: (v, o) => v.getFloat32(o, true) },
  [DataType.DOUBLE]: { size: 8, read: (v, o) => v.getFloat64(o, true) },
  [DataType.UINT8]: { size: 1, read: (v, o) => v.getUint8(o) },
  [DataType.INT8]: { size: 1, read: (v, o) => v.getInt8(o) },
  [DataType.UINT16]: { size: 2, read: (v, o) => v.getUint16(o, true) },
  [DataType.INT16]: { size: 2, read: (v, o) => v.getInt16(o, true) },
  [DataType.INT32]: { size: 4, read: (v, o) => v.getInt32(o, true) },
  [DataType.INT64]: { size: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
  [DataType.FLOAT16]: { size: 2, read: (v, o) => halfToFloat(v.getUint16(o, true)) },
};

/** An IEEE 754 half-precision bit pattern as a number (DataView.getFloat16 is Node 24+). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): Onnx.ITensorProto {
  const data = Float32Array.from(values);
  if (data.length !== dims.reduce((n, d) => n * d, 1)) {
    throw new Error(`floatTensor ${name}: ${data.length} values do not fit dims [${dims}]`);
  }
  // raw_data is little-endian by spec; write it explicitly rather than trust the host order.
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return { name, dims, dataType: DataType.FLOAT, rawData: raw };
}

export function int64Tensor(name: string, values: number[]): Onnx.ITensorProto {
  return { name, dims: [values.length], dataType: DataType.INT64, int64Data: values };
}

// ---- Nodes, attributes, value infos ----

export type AttrValue = number | number[] | { float: number };

/** A node; integer attributes as numbers or number arrays, float ones as `{ float }`. */
export function makeNode(
  opType: string,
  input: string[],
  output: string[],
  attrs: Record<string, AttrValue> = {},
): Onnx.INodeProto {
  const attribute = Object.entries(attrs).map(([name, v]): Onnx.IAttributeProto => {
    if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: v };
    if (typeof v === 'number') return { name, type: AttributeType.INT, i: v };
    return { name, type: AttributeType.FLOAT, f: v.float };
  });
  return { opType, input, output, name: output[0], attribute };
}

function findAttr(node: Onnx.INodeProto, name: string): Onnx.IAttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function intAttr(node: Onnx.INodeProto, name: string, fallback: number): number {
  const a = findAttr(node, name);
  return a ? toInt(a.i) : fallback;
}

export function floatAttr(node: Onnx.INodeProto, name: string, fallback: number): number {
  const a = findAttr(node, name);
  return a ? (a.f ?? 0) : fallback;
}

export function intsAttr(node: Onnx.INodeProto, name: string): number[] | undefined {
  return findAttr(node, name)?.ints?.map(toInt);
}

/** Dimensions: a number for a fixed size, a string for a named (dynamic) one. */
export type Dim = number | string;

export function tensorInfo(name: string, elemType: number, dims: Dim[]): Onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** The shape in a value info: a positive number per known dimension, the name or undefined otherwise. */
export function infoShape(info: Onnx.IValueInfoProto): (Dim | undefined)[] | undefined {
  const dims = info.type?.tensorType?.shape?.dim;
  if (!dims) return undefined;
  return dims.map((d) => {
    if (d.dimParam) return d.dimParam;
    const n = toInt(d.dimValue);
    return n > 0 ? n : undefined;
  });
}

export const FLOAT = DataType.FLOAT;
export const FLOAT16 = DataType.FLOAT16;
export const DOUBLE = DataType.DOUBLE;
export const BFLOAT16 = DataType.BFLOAT16;
