import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { readTar } from '../src/dataset/tar-reader.ts';
import { resizedSize } from '../src/imaging/preprocess-image.ts';
import { cutAtFeature, findFeatureCut, loadModel } from '../src/model/onnx-graph.ts';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import { IMAGENET_PREPROCESS } from '../src/model/types.ts';

const SIZE = 64;
const CLASSES = 10;
const PER_CLASS = 10;
/** Images 1..TRAIN of each class make the centroids; the rest are held out. */
const TRAIN = 6;

interface Sample {
  label: string;
  index: number;
  tensor: Float32Array;
}

/** Resize the shorter side to SIZE, centre-crop SIZE × SIZE, /255, ImageNet mean/std, NCHW. */
async function toTensor(jpeg: Buffer): Promise<Float32Array> {
  const { width, height } = await sharp(jpeg).metadata();
  const target = resizedSize(width, height, SIZE);
  const { data } = await sharp(jpeg)
    .resize(target.width, target.height, { fit: 'fill' })
    .extract({
      left: Math.floor((target.width - SIZE) / 2),
      top: Math.floor((target.height - SIZE) / 2),
      width: SIZE,
      height: SIZE,
    })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { mean, std } = IMAGENET_PREPROCESS;
  const plane = SIZE * SIZE;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) out[c * plane + p] = (data[p * 3 + c]! / 255 - mean[c]!) / std[c]!;
  }
  return out;
}

async function readSamples(tarPath: string): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const entry of readTar(createReadStream(tarPath))) {
    if (entry.type !== 'file' || !entry.data) continue;
    // Images/<wnid>-<Breed>/<wnid>_<n>.jpg
    const [, label, file] = entry.name.split('/');
    const index = Number(/_(\d+)\.jpg$/.exec(file ?? '')?.[1]);
    samples.push({ label: label!, index, tensor: await toTensor(entry.data) });
  }
  return samples;
}

function squaredDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

describe('the tiny backbone', () => {
  let dir: string;
  let samples: Sample[];
  let features: Float32Array[];
  let msPerImage: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tiny-backbone-'));
    const tar = await writeSampleTarball(join(dir, 'images.tar'), {
      classes: CLASSES,
      perClass: PER_CLASS,
      seed: 5,
    });
    samples = await readSamples(tar.path);
    const model = loadModel(buildTinyBackbone(), 'tiny');
    const cut = findFeatureCut(model);
    const session = await ort.InferenceSession.create(cutAtFeature(model, cut), { intraOpNumThreads: 1 });
    const batch = new Float32Array(samples.length * 3 * SIZE * SIZE);
    samples.forEach((s, i) => {
      batch.set(s.tensor, i * s.tensor.length);
    });
    const started = performance.now();
    const result = await session.run({
      input: new ort.Tensor('float32', batch, [samples.length, 3, SIZE, SIZE]),
    });
    msPerImage = (performance.now() - started) / samples.length;
    await session.release();
    const flat = result[session.outputNames[0]!]!.data as Float32Array;
    features = samples.map((_, i) => flat.subarray(i * cut.featureDim, (i + 1) * cut.featureDim));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('separates the 10 synthetic classes: nearest-centroid accuracy on held-out images ≥ 0.9', () => {
    expect(samples).toHaveLength(CLASSES * PER_CLASS);
    const labels = [...new Set(samples.map((s) => s.label))];
    const centroids = labels.map((label) => {
      const own = features.filter((_, i) => samples[i]!.label === label && samples[i]!.index <= TRAIN);
      expect(own).toHaveLength(TRAIN);
      return own[0]!.map((_, d) => own.reduce((sum, f) => sum + f[d]!, 0) / own.length);
    });
    const heldOut = samples.flatMap((s, i) => (s.index > TRAIN ? [{ label: s.label, f: features[i]! }] : []));
    const correct = heldOut.filter(({ label, f }) => {
      const distances = centroids.map((c) => squaredDistance(c, f));
      return labels[distances.indexOf(Math.min(...distances))] === label;
    });
    const accuracy = correct.length / heldOut.length;
    console.info(
      `tiny backbone: nearest-centroid ${accuracy} on ${heldOut.length} held-out, ${msPerImage.toFixed(2)} ms/image`,
    );
    expect(heldOut).toHaveLength(CLASSES * (PER_CLASS - TRAIN));
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
  });

  it('is deterministic: the seed changes only the dummy classifier', () => {
    const a = loadModel(buildTinyBackbone({ seed: 3 }), 'a').graph!;
    const b = loadModel(buildTinyBackbone({ seed: 3 }), 'b').graph!;
    const c = loadModel(buildTinyBackbone({ seed: 4 }), 'c').graph!;
    const raw = (g: typeof a, name: string) =>
      Buffer.from(g.initializer!.find((t) => t.name === name)!.rawData!);
    expect(raw(a, 'gemm_weights').equals(raw(b, 'gemm_weights'))).toBe(true);
    expect(raw(a, 'gemm_weights').equals(raw(c, 'gemm_weights'))).toBe(false);
    expect(raw(a, 'conv_weights').equals(raw(c, 'conv_weights'))).toBe(true);
    expect(buildTinyBackbone({ seed: 3 })).toEqual(buildTinyBackbone({ seed: 3 }));
  });

  it('has the ImageNet-style layout the graph tools expect, at any input size', () => {
    const graph = loadModel(buildTinyBackbone({ inputSize: 128 }), 'tiny').graph!;
    expect(graph.node?.map((n) => n.opType)).toEqual([
      'Conv',
      'Relu',
      'GlobalAveragePool',
      'Flatten',
      'Gemm',
    ]);
    expect(graph.output?.map((o) => o.name)).toEqual(['logits']);
    expect(findFeatureCut(loadModel(buildTinyBackbone({ inputSize: 128 }), 't')).inputShape).toEqual([
      -1, 3, 128, 128,
    ]);
    expect(() => buildTinyBackbone({ inputSize: 8 })).toThrow('inputSize must be an integer ≥ 16, got 8');
  });
});
