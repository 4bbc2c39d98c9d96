import { DataError, InputError } from '../errors.ts';
import { type FeatureCutOptions, floatSource, indexGraph, locateFeature } from './backbone.ts';
import {
  type Dim,
  encodeModel,
  FLOAT,
  floatTensor,
  infoShape,
  int64Tensor,
  loadModel,
  makeNode,
  type Onnx,
  tensorInfo,
  toInt,
} from './onnx-io.ts';
import type { FeatureCut, HeadWeights } from './types.ts';

// Graph surgery for training: cut a backbone at its pooled feature, and append a trained head so
// backbone + head ship as ONE model (input: the normalized image; output: probabilities).

export { extractClassifier, type FeatureCutOptions, findFeatureCut } from './backbone.ts';
export { loadModel } from './onnx-io.ts';

/** The merged model's single output. */
export const PROBABILITIES = 'probabilities';
/** Default opset when a graph imports none for the standard domain (every op used here has it). */
const DEFAULT_OPSET = 13;
/** Stand-in for dynamic image sides when a probe run needs concrete ones. */
const PROBE_SIDE = 224;

/** The backbone pruned to what the flattened float feature needs, ready for more nodes. */
interface FeatureGraph {
  nodes: Onnx.INodeProto[];
  initializers: Onnx.ITensorProto[];
  inputs: Onnx.IValueInfoProto[];
  valueInfo: Onnx.IValueInfoProto[];
  /** The flattened [N, D] float feature tensor. */
  feature: string;
  batch: Dim;
  /** Tensor and node names in the backbone and added so far. */
  used: Set<string>;
}

function featureGraph(
  model: Onnx.IModelProto,
  cut: FeatureCut | Omit<FeatureCut, 'featureDim'>,
): FeatureGraph {
  const ix = indexGraph(model, 'the backbone');
  const graph = ix.graph;
  const used = new Set<string>();
  for (const node of graph.node ?? []) {
    for (const name of [node.name ?? '', ...(node.input ?? []), ...(node.output ?? [])]) used.add(name);
  }
  for (const name of ix.constants.keys()) used.add(name);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };

  const added: Onnx.INodeProto[] = [];
  const source = floatSource(ix, cut.featureTensor);
  let pooled = source.tensor;
  if (source.kind !== 'float') {
    const dequantized = fresh(`${source.tensor}_float`);
    added.push(makeNode('DequantizeLinear', [source.tensor, source.scale, source.zeroPoint], [dequantized]));
    pooled = dequantized;
    if (source.kind === 'pool-dequantized') {
      pooled = fresh(`${source.tensor}_pooled`);
      added.push(makeNode('GlobalAveragePool', [dequantized], [pooled]));
    }
  }
  const feature = fresh('features');
  added.push(makeNode('Flatten', [pooled], [feature], { axis: 1 }));

  const needed = neededTensors(ix.producer, added);
  const input = (graph.input ?? []).find((i) => i.name === cut.inputName);
  if (!input) throw new DataError(`the backbone has no input ${cut.inputName}`);
  return {
    nodes: [...(graph.node ?? []).filter((n) => n.output?.some((o) => needed.has(o))), ...added],
    initializers: (graph.initializer ?? []).filter((t) => needed.has(t.name ?? '')),
    // IR 3 lists initializers among the inputs too; keep the ones still used.
    inputs: (graph.input ?? []).filter(
      (i) => i === input || (ix.initializerNames.has(i.name ?? '') && needed.has(i.name ?? '')),
    ),
    valueInfo: (graph.valueInfo ?? []).filter((v) => needed.has(v.name ?? '')),
    feature,
    batch: infoShape(input)?.[0] ?? 'N',
    used,
  };
}

/** Every tensor the `roots` nodes depend on, through subgraph attributes (If, Loop) too. */
function neededTensors(producer: Map<string, Onnx.INodeProto>, roots: Onnx.INodeProto[]): Set<string> {
  const needed = new Set<string>();
  const stack = roots.flatMap(nodeInputs);
  for (let name = stack.pop(); name !== undefined; name = stack.pop()) {
    if (needed.has(name)) continue;
    needed.add(name);
    const node = producer.get(name);
    if (node) stack.push(...nodeInputs(node));
  }
  return needed;
}

function nodeInputs(node: Onnx.INodeProto): string[] {
  const subgraphs = (node.attribute ?? []).flatMap((a) => [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]);
  const inner = subgraphs.flatMap((g) => (g.node ?? []).flatMap(nodeInputs));
  return [...(node.input ?? []).filter((name) => name !== ''), ...inner];
}

interface GraphBody {
  nodes: Onnx.INodeProto[];
  initializers: Onnx.ITensorProto[];
  inputs: Onnx.IValueInfoProto[];
  valueInfo: Onnx.IValueInfoProto[];
}

/** Opset imports of all the models, the highest version per domain (a standard one at least). */
function mergedOpsets(models: Onnx.IModelProto[]): Onnx.IOperatorSetIdProto[] {
  const versions = new Map<string, number>();
  for (const m of models) {
    for (const o of m.opsetImport ?? []) {
      const domain = o.domain === 'ai.onnx' ? '' : (o.domain ?? '');
      versions.set(domain, Math.max(versions.get(domain) ?? 0, toInt(o.version)));
    }
  }
  if (!versions.has('')) versions.set('', DEFAULT_OPSET);
  return [...versions].map(([domain, version]) => ({ domain, version }));
}

function assemble(
  models: Onnx.IModelProto[],
  body: GraphBody,
  output: Onnx.IValueInfoProto,
  meta: Record<string, string>,
): Uint8Array {
  return encodeModel({
    irVersion: Math.max(...models.map((m) => toInt(m.irVersion))),
    opsetImport: mergedOpsets(models),
    producerName: 'dogbreed-pipeline',
    functions: models.flatMap((m) => m.functions ?? []),
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
    graph: {
      name: models[0]?.graph?.name || 'backbone',
      node: body.nodes,
      initializer: body.initializers,
      input: body.inputs,
      output: [output],
      valueInfo: body.valueInfo,
    },
  });
}

function bodyOf(fg: FeatureGraph): GraphBody {
  return { nodes: fg.nodes, initializers: fg.initializers, inputs: fg.inputs, valueInfo: fg.valueInfo };
}

/** A model whose single output is the flattened float feature [N, featureDim]. */
export function cutAtFeature(model: Onnx.IModelProto, cut: FeatureCut): Uint8Array {
  const fg = featureGraph(model, cut);
  return assemble([model], bodyOf(fg), tensorInfo(fg.feature, FLOAT, [fg.batch, cut.featureDim]), {});
}

/** findFeatureCut, measuring the width by one run on a zero image when the graph does not declare it. */
export async function findFeatureCutAsync(
  model: Onnx.IModelProto,
  opts: FeatureCutOptions = {},
): Promise<FeatureCut> {
  const { cut, featureDim } = locateFeature(model, opts);
  if (featureDim !== undefined) return { ...cut, featureDim };
  const fg = featureGraph(model, cut);
  const bytes = assemble([model], bodyOf(fg), tensorInfo(fg.feature, FLOAT, [fg.batch, 'D']), {});
  // Loaded lazily: graph surgery alone should not pull in the native runtime.
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const dims = cut.inputShape.map((d, i) => (d > 0 ? d : i === 0 ? 1 : PROBE_SIDE));
    const zeros = new ort.Tensor('float32', new Float32Array(dims.reduce((n, d) => n * d, 1)), dims);
    const result = await session.run({ [cut.inputName]: zeros });
    const out = result[fg.feature];
    if (!out) throw new DataError(`running the cut at ${cut.featureTensor} gave no output`);
    return { ...cut, featureDim: out.dims.slice(1).reduce((n, d) => n * d, 1) };
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(
      `${opts.source ?? 'the model'} could not be run to measure feature tensor ${cut.featureTensor}: ${
        err instanceof Error ? err.message : String(err)
      }`,
    );
  } finally {
    await session.release();
  }
}

/** One backbone of a merged model: its bytes and where its pooled feature is. */
export interface MergePart {
  bytes: Uint8Array;
  cut: FeatureCut;
}

export interface MergeOptions {
  /** Average the logits of the image and its horizontal mirror (test-time flip). */
  flip?: boolean;
  /** The input layout, which says which axis is the image width (for the flip). */
  layout?: 'NCHW' | 'NHWC';
}

/**
 * ONE model: the backbone up to the feature, the head (MatMul + Add, ReLU between layers), then
 * Softmax. Input: the backbone's image input; output `probabilities` [N, classes]; metadata
 * from `meta` (labels, preprocessing, provenance).
 */
export function mergeHead(
  backboneBytes: Uint8Array,
  cut: FeatureCut,
  head: HeadWeights,
  meta: Record<string, string>,
  opts: MergeOptions = {},
): Uint8Array {
  return mergeBackbones([{ bytes: backboneBytes, cut }], head, meta, opts);
}

/**
 * ONE model over several backbones: the image goes through each (their names prefixed
 * `backbone<i>_` so they cannot clash), their features are concatenated in order, and the head
 * follows. With one backbone, names stay as they are and this is mergeHead.
 */
export function mergeBackbones(
  parts: MergePart[],
  head: HeadWeights,
  meta: Record<string, string>,
  opts: MergeOptions = {},
): Uint8Array {
  const [first] = parts;
  if (!first) throw new InputError('mergeBackbones needs at least one backbone');
  checkHead(
    head,
    parts.reduce((n, p) => n + p.cut.featureDim, 0),
  );
  checkSameInput(parts);
  const models = parts.map((p) => loadModel(p.bytes, 'the backbone'));
  const inputName = first.cut.inputName;
  const used = new Set<string>([inputName]);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
  // The tensor every backbone reads: the input, or the input and its mirror stacked on the batch.
  const image = opts.flip ? `${inputName}_and_mirror` : inputName;
  const graphs = models.map((model, i) => {
    const fg = featureGraph(model, parts[i]!.cut);
    const prefix = parts.length === 1 ? '' : `backbone${i}_`;
    const rename = (name: string) =>
      name === '' ? '' : name === parts[i]!.cut.inputName ? image : `${prefix}${name}`;
    for (const name of fg.used) {
      const renamed = rename(name);
      if (renamed === PROBABILITIES || (renamed === image && name !== parts[i]!.cut.inputName))
        throw new DataError(`the backbone already has a tensor named ${renamed}`);
      used.add(renamed);
    }
    return { fg, body: renameBody(bodyOf(fg), rename), feature: rename(fg.feature) };
  });
  used.add(PROBABILITIES);
  const input = graphs[0]!.fg.inputs.find((i) => i.name === inputName)!;
  const batch = graphs[0]!.fg.batch;
  const nodes: Onnx.INodeProto[] = [];
  const initializers: Onnx.ITensorProto[] = [];
  if (opts.flip) {
    // Slice with step −1 along the width axis mirrors the image.
    const widthAxis = opts.layout === 'NHWC' ? 2 : 3;
    const [starts, ends, axes, steps] = ['starts', 'ends', 'axes', 'steps'].map((n) => fresh(`mirror_${n}`));
    initializers.push(
      int64Tensor(starts!, [-1]),
      int64Tensor(ends!, [Number.MIN_SAFE_INTEGER]),
      int64Tensor(axes!, [widthAxis]),
      int64Tensor(steps!, [-1]),
    );
    const mirror = fresh(`${inputName}_mirror`);
    nodes.push(
      makeNode('Slice', [inputName, starts!, ends!, axes!, steps!], [mirror]),
      makeNode('Concat', [inputName, mirror], [image], { axis: 0 }),
    );
  }
  for (const g of graphs) {
    nodes.push(...g.body.nodes);
    initializers.push(...g.body.initializers);
  }
  let x = graphs[0]!.feature;
  if (graphs.length > 1) {
    x = fresh('features');
    nodes.push(
      makeNode(
        'Concat',
        graphs.map((g) => g.feature),
        [x],
        { axis: 1 },
      ),
    );
  }
  head.layers.forEach((layer, i) => {
    const w = fresh(`head_${i}_weights`);
    const b = fresh(`head_${i}_bias`);
    initializers.push(floatTensor(w, [layer.inDim, layer.outDim], layer.weights));
    initializers.push(floatTensor(b, [layer.outDim], layer.bias));
    const product = fresh(`head_${i}_matmul`);
    const sum = fresh(`head_${i}_logits`);
    nodes.push(makeNode('MatMul', [x, w], [product]), makeNode('Add', [product, b], [sum]));
    x = sum;
    if (i < head.layers.length - 1) {
      x = fresh(`head_${i}_relu`);
      nodes.push(makeNode('Relu', [sum], [x]));
    }
  });
  if (opts.flip) x = averageHalves(x, head.classes, fresh, nodes, initializers);
  // axis 1 explicitly: the default moved from 1 to -1 in opset 13, the same axis for [N, classes].
  nodes.push(makeNode('Softmax', [x], [PROBABILITIES], { axis: 1 }));
  const images = new Set([inputName, image]);
  return assemble(
    models,
    {
      nodes,
      initializers,
      inputs: [input, ...graphs.flatMap((g) => g.body.inputs.filter((i) => !images.has(i.name ?? '')))],
      valueInfo: graphs.flatMap((g) => g.body.valueInfo.filter((v) => !images.has(v.name ?? ''))),
    },
    tensorInfo(PROBABILITIES, FLOAT, [batch, head.classes]),
    meta,
  );
}

/**
 * Logits [2N, C] of the images then their mirrors → their mean [N, C]: reshaped to [2, N·C] and
 * multiplied by [½, ½] (MatMul and Reshape mean the same in every opset, unlike ReduceMean).
 */
function averageHalves(
  logits: string,
  classes: number,
  fresh: (base: string) => string,
  nodes: Onnx.INodeProto[],
  initializers: Onnx.ITensorProto[],
): string {
  const [pairShape, rowShape, half] = [
    fresh('mirror_pair_shape'),
    fresh('mirror_row_shape'),
    fresh('mirror_half'),
  ];
  initializers.push(
    int64Tensor(pairShape, [2, -1]),
    int64Tensor(rowShape, [-1, classes]),
    floatTensor(half, [1, 2], [0.5, 0.5]),
  );
  const [pairs, mean, out] = [fresh('mirror_pairs'), fresh('mirror_mean'), fresh('mirror_logits')];
  nodes.push(
    makeNode('Reshape', [logits, pairShape], [pairs]),
    makeNode('MatMul', [half, pairs], [mean]),
    makeNode('Reshape', [mean, rowShape], [out]),
  );
  return out;
}

/** Backbones of one model read the same image: the same input shape (the batch aside). */
function checkSameInput(parts: MergePart[]): void {
  const shape = (p: MergePart) => JSON.stringify(p.cut.inputShape.slice(1));
  const odd = parts.find((p) => shape(p) !== shape(parts[0]!));
  if (odd) {
    throw new DataError(
      `backbones of one model must take the same input: backbone 0 takes ${shape(parts[0]!)}, another takes ${shape(odd)}`,
    );
  }
}

/** Every tensor and node name through `rename`, into subgraphs (If, Loop) too. */
function renameBody(body: GraphBody, rename: (name: string) => string): GraphBody {
  const info = (v: Onnx.IValueInfoProto) => ({ ...v, name: rename(v.name ?? '') });
  return {
    nodes: body.nodes.map((n) => renameNode(n, rename)),
    initializers: body.initializers.map((t) => ({ ...t, name: rename(t.name ?? '') })),
    inputs: body.inputs.map(info),
    valueInfo: body.valueInfo.map(info),
  };
}

function renameNode(node: Onnx.INodeProto, rename: (name: string) => string): Onnx.INodeProto {
  const graph = (g: Onnx.IGraphProto): Onnx.IGraphProto => {
    const body = renameBody(
      {
        nodes: g.node ?? [],
        initializers: g.initializer ?? [],
        inputs: g.input ?? [],
        valueInfo: g.valueInfo ?? [],
      },
      rename,
    );
    return {
      ...g,
      node: body.nodes,
      initializer: body.initializers,
      input: body.inputs,
      valueInfo: body.valueInfo,
      output: (g.output ?? []).map((v) => ({ ...v, name: rename(v.name ?? '') })),
    };
  };
  return {
    ...node,
    name: node.name ? rename(node.name) : node.name,
    input: (node.input ?? []).map(rename),
    output: (node.output ?? []).map(rename),
    attribute: (node.attribute ?? []).map((a) => ({
      ...a,
      ...(a.g ? { g: graph(a.g) } : {}),
      ...(a.graphs?.length ? { graphs: a.graphs.map(graph) } : {}),
    })),
  };
}

function checkHead(head: HeadWeights, featureDim: number): void {
  const fail = (reason: string) => new InputError(`classifier head does not fit: ${reason}`);
  if (head.inputDim !== featureDim)
    throw fail(`it takes ${head.inputDim} features, the backbone gives ${featureDim}`);
  if (head.layers.length === 0) throw fail('it has no layers');
  let width = head.inputDim;
  head.layers.forEach((layer, i) => {
    if (layer.inDim !== width)
      throw fail(`layer ${i} takes ${layer.inDim} inputs, the previous gives ${width}`);
    if (layer.weights.length !== layer.inDim * layer.outDim || layer.bias.length !== layer.outDim) {
      throw fail(
        `layer ${i} has ${layer.weights.length} weights and ${layer.bias.length} biases for ${layer.inDim}×${layer.outDim}`,
      );
    }
    width = layer.outDim;
  });
  if (width !== head.classes) throw fail(`its last layer gives ${width} outputs for ${head.classes} classes`);
}
