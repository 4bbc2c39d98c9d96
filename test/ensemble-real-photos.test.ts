import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, expect, it } from 'vitest';
import { parseClassName } from '../src/dataset/profiles.ts';
import { OnnxBatchModel } from '../src/model/batch-model.ts';
import { evalView } from '../src/model/image-tensor.ts';
import { IMAGENET_WNIDS } from '../src/model/imagenet-wnids.ts';
import {
  cutAtFeature,
  extractClassifier,
  findFeatureCutAsync,
  loadModel,
  mergeBackbones,
  PROBABILITIES,
} from '../src/model/onnx-graph.ts';
import { loadTf } from '../src/model/tf-backend.ts';
import type { LabelledFeatures } from '../src/model/train-head.ts';
import { type FeatureCut, IMAGENET_PREPROCESS } from '../src/model/types.ts';
import { type BackboneTables, chooseHead, evaluateHead, headStart } from '../src/training/head-choice.ts';
import { TRAINING_DEFAULTS } from '../src/training/training-config.ts';
import { describeShared, SHARED_BACKBONE, SHARED_RESNET50, SHARED_SAMPLE_DIR } from './helpers/shared.ts';

// Two real backbones (int8 MobileNetV2, float16 ResNet-50) on real photos: features computed
// once per backbone, then three heads — each backbone alone and the two together — trained by
// the pipeline's own head choice, compared on held-out photos. Sized for CI (30 breeds × 40).

const CLASSES = 30;
const [TRAIN, VAL] = [20, 8]; // per breed; the other 12 are the test photos

interface Split {
  features: Float32Array;
  labels: Int32Array;
}
interface Computed {
  bytes: Uint8Array;
  cut: FeatureCut;
  start: BackboneTables['start'];
  splits: Record<'train' | 'val' | 'test', Split>;
}

describeShared('a two-backbone ensemble on real photos', () => {
  const classes = readdirSync(SHARED_SAMPLE_DIR).sort().slice(0, CLASSES);
  const photos = classes.flatMap((c, label) =>
    readdirSync(join(SHARED_SAMPLE_DIR, c))
      .sort()
      .map((f, i) => ({
        path: join(SHARED_SAMPLE_DIR, c, f),
        label,
        split: i < TRAIN ? 'train' : i < TRAIN + VAL ? 'val' : ('test' as const),
      })),
  );
  const computed: Computed[] = [];
  let tensors: Float32Array[];

  beforeAll(async () => {
    tensors = await Promise.all(
      photos.map((p) => evalView(readFileSync(p.path), IMAGENET_PREPROCESS, p.path)),
    );
    for (const uri of [SHARED_BACKBONE, SHARED_RESNET50]) {
      const bytes = readFileSync(uri);
      const model = loadModel(bytes, uri);
      const cut = await findFeatureCutAsync(model, { source: uri });
      const extractor = await OnnxBatchModel.create(cutAtFeature(model, cut), {
        outputDim: cut.featureDim,
        spec: IMAGENET_PREPROCESS,
      });
      const features = new Float32Array(photos.length * cut.featureDim);
      try {
        for (let i = 0; i < photos.length; i += 32)
          features.set(await extractor.run(tensors.slice(i, i + 32)), i * cut.featureDim);
      } finally {
        await extractor.release();
      }
      const pick = (split: string): Split => {
        const rows = photos.flatMap((p, i) => (p.split === split ? [i] : []));
        const out = new Float32Array(rows.length * cut.featureDim);
        rows.forEach((r, k) => {
          out.set(features.subarray(r * cut.featureDim, (r + 1) * cut.featureDim), k * cut.featureDim);
        });
        return { features: out, labels: Int32Array.from(rows, (r) => photos[r]!.label) };
      };
      const start = headStart({
        wnids: classes.map((c) => parseClassName(c).wnid),
        classifier: extractClassifier(model, cut),
        outputLabels: IMAGENET_WNIDS,
        featureDim: cut.featureDim,
        hidden: 0,
        initFromBackbone: true,
      });
      computed.push({
        bytes,
        cut,
        start,
        splits: { train: pick('train'), val: pick('val'), test: pick('test') },
      });
    }
    // ~1 min on 2 idle cores (1200 photos through both backbones); far longer on a busy machine.
  }, 900_000);

  /** The pipeline's head choice on copies of the features (it standardises them in place). */
  const train = async (which: Computed[]) => {
    const copy = (s: Split): LabelledFeatures => ({ features: s.features.slice(), labels: s.labels });
    const { tf } = await loadTf();
    return chooseHead(
      which.map((c, i) => ({
        source: `backbone ${i}`,
        featureDim: c.cut.featureDim,
        train: copy(c.splits.train),
        val: copy(c.splits.val),
        start: c.start,
      })),
      CLASSES,
      TRAINING_DEFAULTS,
      tf,
    );
  };
  /** Row-wise concatenation of the backbones' test features. */
  const testFeatures = (which: Computed[]): LabelledFeatures => {
    const rows = which[0]!.splits.test.labels.length;
    const dim = which.reduce((n, c) => n + c.cut.featureDim, 0);
    const out = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      let offset = r * dim;
      for (const c of which) {
        const d = c.cut.featureDim;
        out.set(c.splits.test.features.subarray(r * d, (r + 1) * d), offset);
        offset += d;
      }
    }
    return { features: out, labels: which[0]!.splits.test.labels };
  };

  it('both backbones start from their own ImageNet rows (ResNet-50 through its float16 Cast)', () => {
    expect(computed.map((c) => c.start.kind)).toEqual([
      'backbone-classifier-rows',
      'backbone-classifier-rows',
    ]);
  });

  it('the ensemble beats each backbone alone on held-out photos, and ships as one model', async () => {
    const alone = [];
    for (const c of computed) {
      const choice = await train([c]);
      alone.push(evaluateHead(testFeatures([c]), c.cut.featureDim, choice.head).valAccuracy);
    }
    const both = await train(computed);
    const dim = computed.reduce((n, c) => n + c.cut.featureDim, 0);
    const test = testFeatures(computed);
    const ensemble = evaluateHead(test, dim, both.head).valAccuracy;
    console.log(
      `ensemble on ${test.labels.length} held-out photos: ${ensemble.toFixed(3)} (${both.chosen}; val candidates ${both.candidates
        .map((c) => `${c.name} ${c.valAccuracy.toFixed(3)}`)
        .join(', ')}) vs alone ${alone.map((a) => a.toFixed(3)).join(', ')}`,
    );
    for (const a of alone) expect(ensemble).toBeGreaterThan(a);

    // The merged graph (opset 12 int8 + opset 13 float16 backbones) gives the head's answers.
    const merged = mergeBackbones(
      computed.map((c) => ({ bytes: c.bytes, cut: c.cut })),
      both.head,
      {},
    );
    const session = await ort.InferenceSession.create(merged);
    try {
      const rows = 8;
      const first = photos.flatMap((p, i) => (p.split === 'test' ? [i] : [])).slice(0, rows);
      const input = new Float32Array(rows * 3 * 224 * 224);
      first.forEach((r, k) => {
        input.set(tensors[r]!, k * 3 * 224 * 224);
      });
      const out = await session.run({ input: new ort.Tensor('float32', input, [rows, 3, 224, 224]) });
      const probabilities = out[PROBABILITIES]!.data as Float32Array;
      const head = both.head.layers[0]!;
      for (let k = 0; k < rows; k++) {
        const x = test.features.subarray(k * dim, (k + 1) * dim);
        const logits = Array.from(head.bias, (b, o) =>
          x.reduce((s, v, d) => s + v * head.weights[d * CLASSES + o]!, b),
        );
        const top = logits.indexOf(Math.max(...logits));
        const row = Array.from(probabilities.subarray(k * CLASSES, (k + 1) * CLASSES));
        expect(row.indexOf(Math.max(...row))).toBe(top);
      }
    } finally {
      await session.release();
    }
  }, 300_000);
});
