import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxBatchModel, packBatch, RowTable, sessionOptions } from '../src/model/batch-model.ts';
import { evalView } from '../src/model/image-tensor.ts';
import { findFeatureCut, loadModel, mergeHead } from '../src/model/onnx-graph.ts';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../src/model/types.ts';
import { evalViewOutputs, VALIDATE_BATCH, VALIDATE_LOAD } from '../src/stages/validate-shard.ts';
import { TINY_INPUT } from '../src/training/backbone-source.ts';
import { mulberry32 } from '../src/util/prng.ts';
import { makeJpegs } from './images.ts';
import { SHARED_SAMPLE_DIR } from './paths.ts';
import { interleavedBest, round } from './util.ts';

// Batched inference as Validate runs it (evalViewOutputs: decode and preprocess of shard JPEGs
// overlapped with onnxruntime calls in a worker thread) against a bare InferenceSession.run
// loop over the same batches, pre-decoded, with the same threads and batch size, with the
// merged classifier. TrainModel's feature extraction has its own benchmark against the
// CPU-bound limit (feature-extraction.ts).

const BATCH = VALIDATE_BATCH;
const MOBILENET = resolve(SHARED_SAMPLE_DIR, '../../models/mobilenetv2-12-int8/mobilenetv2-12-int8.onnx');
const CLASSES = 120;

interface Setup {
  model: Uint8Array;
  outputDim: number;
  spec: PreprocessSpec;
  backbone: string;
}

function validationModel(): Setup {
  const real = existsSync(MOBILENET);
  const bytes = real ? readFileSync(MOBILENET) : buildTinyBackbone({ inputSize: TINY_INPUT });
  const spec: PreprocessSpec = real
    ? IMAGENET_PREPROCESS
    : { ...IMAGENET_PREPROCESS, resizeShorter: 73, cropSize: TINY_INPUT };
  const backbone = real ? 'mobilenetv2-12-int8' : 'tiny (../shared absent)';
  const parsed = loadModel(bytes, 'backbone');
  const cut = findFeatureCut(parsed);
  const rand = mulberry32(1);
  const weights = Float32Array.from({ length: cut.featureDim * CLASSES }, () => (rand() - 0.5) * 0.01);
  const head = {
    inputDim: cut.featureDim,
    classes: CLASSES,
    layers: [{ weights, bias: new Float32Array(CLASSES), inDim: cut.featureDim, outDim: CLASSES }],
  };
  return {
    model: mergeHead(bytes, cut, head, {}),
    outputDim: CLASSES,
    spec,
    backbone: `${backbone} + ${CLASSES}-class head`,
  };
}

async function measure(setup: Setup, jpegs: Buffer[], runs: number, label: string) {
  const { spec } = setup;
  const threads = availableParallelism();
  const tensors = await Promise.all(jpegs.map((j, i) => evalView(j, spec, `img-${i}`)));
  const batches: ort.Tensor[] = [];
  for (let i = 0; i < tensors.length; i += BATCH) {
    const { data, dims } = packBatch(tensors.slice(i, i + BATCH), spec);
    batches.push(new ort.Tensor('float32', data, dims));
  }
  const runner = await OnnxBatchModel.create(setup.model, {
    outputDim: setup.outputDim,
    spec,
    threads,
    ...VALIDATE_LOAD,
  });
  // The pipeline's own session settings: the two differ only in what surrounds session.run.
  const bare = await ort.InferenceSession.create(setup.model, sessionOptions(threads));
  async function* items() {
    yield* jpegs.map((jpeg, i) => ({ jpeg, id: `img-${i}`, row: i }));
  }
  const m = await interleavedBest(runs, label, {
    pipeline: () => evalViewOutputs(items(), runner, spec, new RowTable(setup.outputDim)),
    bareSessionRun: async () => {
      for (const b of batches) await bare.run({ [bare.inputNames[0]!]: b });
    },
  });
  await runner.release();
  await bare.release();
  const ratio = m.bareSessionRun.seconds / m.pipeline.seconds;
  return {
    model: setup.backbone,
    intraOpThreads: threads,
    provider: runner.provider,
    pipeline: {
      imagesPerSec: round(jpegs.length / m.pipeline.seconds, 1),
      allSeconds: m.pipeline.allSeconds,
    },
    bareSessionRun: {
      imagesPerSec: round(jpegs.length / m.bareSessionRun.seconds, 1),
      allSeconds: m.bareSessionRun.allSeconds,
    },
    ratio: round(ratio, 3),
  };
}

export async function benchBatchedInference(_dir: string, quick: boolean): Promise<Record<string, unknown>> {
  const images = quick ? 64 : 256;
  // What TrainModel and Validate read: Preprocess output, shorter side 256.
  const jpegs = await makeJpegs(images, () => ({ width: 341, height: 256 }));
  const runs = quick ? 1 : 3;
  const v = await measure(validationModel(), jpegs, runs, 'validation');
  return {
    images,
    batch: BATCH,
    inputJpegs: '341x256 (Preprocess output)',
    validation: {
      goal: 'images/s >= 0.85 x bare InferenceSession.run, same batch size and threads',
      meetsGoal: v.ratio >= 0.85,
      ...v,
    },
  };
}
