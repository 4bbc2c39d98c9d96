import { DataError, InputError } from '../errors.ts';
import { type FeatureCutOptions, floatSource, indexGraph, locateFeature } from './backbone.ts';
import {
  type Dim,
  encodeModel,
  FLOAT,
  floatTensor,
  infoShape,
  loadModel,
  makeNode,
  type Onnx,
  tensorInfo,
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
  model: Onnx.IModelProto;
  nodes: Onnx.INodeProto[];
  initializers: Onnx.ITensorProto[];
  inputs: Onnx.IValueInfoProto[];
  valueInfo: Onnx.IValueInfoProto[];
  /** The flattened [N, D] float feature tensor. */
  feature: string;
  batch: Dim;
  /** Tensor and node names in the backbone and added so far. */
  used: Set<string>;
  /** A tensor or node name not yet used in the graph. */
  fresh: (base: string) => string;
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
    model,
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
    fresh,
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

function assemble(
  fg: FeatureGraph,
  extra: { nodes: Onnx.INodeProto[]; initializers: Onnx.ITensorProto[] },
  output: Onnx.IValueInfoProto,
  meta: Record<string, string>,
): Uint8Array {
  const { model } = fg;
  const opsetImport = model.opsetImport ?? [];
  const hasStandard = opsetImport.some((o) => !o.domain || o.domain === 'ai.onnx');
  return encodeModel({
    irVersion: model.irVersion,
    opsetImport: hasStandard ? opsetImport : [...opsetImport, { domain: '', version: DEFAULT_OPSET }],
    producerName: 'dogbreed-pipeline',
    functions: model.functions,
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
    graph: {
      name: model.graph?.name || 'backbone',
      node: [...fg.nodes, ...extra.nodes],
      initializer: [...fg.initializers, ...extra.initializers],
      input: fg.inputs,
      output: [output],
      valueInfo: fg.valueInfo,
    },
  });
}

/** A model whose single output is the flattened float feature [N, featureDim]. */
export function cutAtFeature(model: Onnx.IModelProto, cut: FeatureCut): Uint8Array {
  const fg = featureGraph(model, cut);
  return assemble(
    fg,
    { nodes: [], initializers: [] },
    tensorInfo(fg.feature, FLOAT, [fg.batch, cut.featureDim]),
    {},
  );
}

/** findFeatureCut, measuring the width by one run on a zero image when the graph does not declare it. */
export async function findFeatureCutAsync(
  model: Onnx.IModelProto,
  opts: FeatureCutOptions = {},
): Promise<FeatureCut> {
  const { cut, featureDim } = locateFeature(model, opts);
  if (featureDim !== undefined) return { ...cut, featureDim };
  const fg = featureGraph(model, cut);
  const bytes = assemble(
    fg,
    { nodes: [], initializers: [] },
    tensorInfo(fg.feature, FLOAT, [fg.batch, 'D']),
    {},
  );
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
): Uint8Array {
  checkHead(head, cut.featureDim);
  const fg = featureGraph(loadModel(backboneBytes, 'the backbone'), cut);
  if (fg.used.has(PROBABILITIES)) {
    throw new DataError(`the backbone already has a tensor named ${PROBABILITIES}`);
  }
  const nodes: Onnx.INodeProto[] = [];
  const initializers: Onnx.ITensorProto[] = [];
  let x = fg.feature;
  head.layers.forEach((layer, i) => {
    const w = fg.fresh(`head_${i}_weights`);
    const b = fg.fresh(`head_${i}_bias`);
    initializers.push(floatTensor(w, [layer.inDim, layer.outDim], layer.weights));
    initializers.push(floatTensor(b, [layer.outDim], layer.bias));
    const product = fg.fresh(`head_${i}_matmul`);
    const sum = fg.fresh(`head_${i}_logits`);
    nodes.push(makeNode('MatMul', [x, w], [product]), makeNode('Add', [product, b], [sum]));
    x = sum;
    if (i < head.layers.length - 1) {
      x = fg.fresh(`head_${i}_relu`);
      nodes.push(makeNode('Relu', [sum], [x]));
    }
  });
  // axis 1 explicitly: the default moved from 1 to -1 in opset 13, the same axis for [N, classes].
  nodes.push(makeNode('Softmax', [x], [fg.fresh(PROBABILITIES)], { axis: 1 }));
  return assemble(
    fg,
    { nodes, initializers },
    tensorInfo(PROBABILITIES, FLOAT, [fg.batch, head.classes]),
    meta,
  );
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
