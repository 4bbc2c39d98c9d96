import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxBatchModel, RowTable, runBatched } from '../src/model/batch-model.ts';
import { evalView } from '../src/model/image-tensor.ts';
import { cutAtFeature, findFeatureCut, loadModel } from '../src/model/onnx-graph.ts';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../src/model/types.ts';
import { TINY_INPUT } from '../src/training/backbone-source.ts';
import { makeJpegs } from './images.ts';
import { SHARED_SAMPLE_DIR } from './paths.ts';
import { interleavedBest, round } from './util.ts';

// Feature extraction as TrainModel runs it (decode + preprocess of shard JPEGs overlapped with
// batched onnxruntime calls) against a bare InferenceSession.run loop over the same batches,
// pre-decoded, with the same onnxruntime threads.

const BATCH = 32;
const MOBILENET = resolve(SHARED_SAMPLE_DIR, '../../models/mobilenetv2-12-int8/mobilenetv2-12-int8.onnx');

export async function benchFeatures(_dir: string, quick: boolean): Promise<Record<string, unknown>> {
  const images = quick ? 64 : 256;
  const real = existsSync(MOBILENET);
  const backbone = real ? readFileSync(MOBILENET) : buildTinyBackbone({ inputSize: TINY_INPUT });
  const spec: PreprocessSpec = real
    ? IMAGENET_PREPROCESS
    : { ...IMAGENET_PREPROCESS, resizeShorter: 73, cropSize: TINY_INPUT };
  const model = loadModel(backbone, 'backbone');
  const cut = findFeatureCut(model);
  const cutBytes = cutAtFeature(model, cut);
  // What TrainModel reads: Preprocess output, shorter side 256.
  const jpegs = await makeJpegs(images, () => ({ width: 341, height: 256 }));
  const tensors = await Promise.all(jpegs.map((j, i) => evalView(j, spec, `img-${i}`)));
  const size = 3 * spec.cropSize * spec.cropSize;
  const batches: ort.Tensor[] = [];
  for (let i = 0; i < tensors.length; i += BATCH) {
    const group = tensors.slice(i, i + BATCH);
    const data = new Float32Array(group.length * size);
    group.forEach((t, k) => {
      data.set(t, k * size);
    });
    batches.push(new ort.Tensor('float32', data, [group.length, 3, spec.cropSize, spec.cropSize]));
  }
  async function* items() {
    yield* jpegs.map((jpeg, i) => ({ jpeg, i }));
  }

  const runs = quick ? 1 : 3;
  const perSec = (s: number) => round(images / s, 1);
  const byThreads: Record<string, unknown> = {};
  let jobRatio = 0;
  const cores = availableParallelism();
  // TrainModel's own setting (all cores) and one core, to show how decoding competes for CPU.
  for (const threads of [cores, 1]) {
    const extractor = await OnnxBatchModel.create(cutBytes, { outputDim: cut.featureDim, spec, threads });
    const bare = await ort.InferenceSession.create(cutBytes, {
      intraOpNumThreads: threads,
      graphOptimizationLevel: 'all',
    });
    const measured = await interleavedBest(runs, `features (${threads} threads)`, {
      pipeline: () =>
        runBatched(
          items(),
          async (x) => ({ tensors: [await evalView(x.jpeg, spec, `img-${x.i}`)], label: 0 }),
          extractor,
          { batchSize: BATCH, table: new RowTable(cut.featureDim) },
        ),
      bareSessionRun: async () => {
        for (const b of batches) await bare.run({ [bare.inputNames[0]!]: b });
      },
    });
    const ratio = measured.bareSessionRun.seconds / measured.pipeline.seconds;
    if (threads === cores) jobRatio = ratio;
    byThreads[`intraOpThreads${threads}`] = {
      usedByTrainModel: threads === cores,
      pipeline: { imagesPerSec: perSec(measured.pipeline.seconds), allSeconds: measured.pipeline.allSeconds },
      bareSessionRun: {
        imagesPerSec: perSec(measured.bareSessionRun.seconds),
        allSeconds: measured.bareSessionRun.allSeconds,
      },
      ratio: round(ratio, 3),
      provider: extractor.provider,
    };
    await extractor.release();
    await bare.release();
  }
  return {
    goal: 'feature extraction images/s >= 0.9 x a bare InferenceSession.run loop over the same batches and threads',
    meetsGoal: jobRatio >= 0.9,
    backbone: real ? 'mobilenetv2-12-int8 (cut at the 1280-d pooled feature)' : 'tiny (../shared absent)',
    images,
    batch: BATCH,
    inputJpegs: '341x256 (Preprocess output)',
    cores,
    ...byThreads,
  };
}
