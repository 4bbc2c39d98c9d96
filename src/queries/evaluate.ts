import { readFile } from 'node:fs/promises';
import { parseClassName } from '../dataset/profiles.ts';
import { openSource, parseSource } from '../dataset/sources.ts';
import { readTar } from '../dataset/tar-reader.ts';
import { DataError, InputError } from '../errors.ts';
import { type ComputedMetrics, computeMetrics } from '../metrics/compute.ts';
import type { Prediction } from '../metrics/types.ts';
import { RowTable, runBatched } from '../model/batch-model.ts';
import {
  loadServingModel,
  modelInput,
  type ServingModel,
  servingModelFromBytes,
} from '../model/serving-model.ts';
import { topK } from '../model/top-k.ts';
import { RUN_ID } from '../schema/fields.ts';
import { readChampion } from '../storage/champion.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';

// `dogbreed evaluate`: the metrics of any model this pipeline produced on any ImageFolder
// directory or tarball, computed locally and exactly as the pipeline would: each image goes
// through Preprocess's resize and re-encode, then the model's own evaluation view.

const IMAGE = /\.(jpe?g|png|webp)$/i;
const BATCH = 32;

export interface EvaluateOptions {
  /** A path or s3:// URL of a model.onnx, a run id, or `champion`. */
  model: string;
  /** ImageFolder directory or tarball (<class>/<image>). */
  source: string;
  /** Preprocess's shorter side (the pipeline's --resize); by default what the model was trained on. */
  resizeShorter?: number;
  onProgress?: (images: number) => void;
}

export interface EvaluateResult {
  model: { source: string; sha256: string };
  images: number;
  metrics: ComputedMetrics;
}

async function resolveModel(store: ObjectStore, ref: string): Promise<ServingModel> {
  if (ref === 'champion') {
    const champion = await readChampion(store);
    if (!champion)
      throw new InputError('there is no champion model yet: a run must pass the quality gate first');
    return loadServingModel(store, champion.modelKey);
  }
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(ref);
  if (s3) return loadServingModel(store.forBucket(s3[1]!), s3[2]!);
  if (RUN_ID.test(ref) && !ref.endsWith('.onnx') && (await store.head(keys.model(ref)))) {
    return loadServingModel(store, keys.model(ref));
  }
  const bytes = await readFile(ref).catch(() => {
    throw new InputError(
      `--model ${ref} is neither a model file, an s3:// URL, a run id with a model, nor "champion"`,
    );
  });
  return servingModelFromBytes(bytes, ref);
}

export async function evaluateModel(store: ObjectStore, opts: EvaluateOptions): Promise<EvaluateResult> {
  const model = await resolveModel(store, opts.model);
  const labels = model.meta.labels;
  const index = new Map(labels.map((l, i) => [l, i]));
  const unknown = new Set<string>();
  async function* images() {
    for await (const entry of readTar(await openSource(parseSource(opts.source), store))) {
      if (entry.type !== 'file' || !entry.data || !IMAGE.test(entry.name)) continue;
      const parts = entry.name.split('/');
      const cls = parts.at(-2);
      const label = cls === undefined ? undefined : index.get(cls);
      if (label === undefined) {
        unknown.add(cls ?? '(top level)');
        continue;
      }
      yield { name: entry.name, data: Buffer.from(entry.data), label };
    }
  }
  const names: string[] = [];
  const trueLabels: number[] = [];
  const table = new RowTable(labels.length);
  await runBatched(
    images(),
    async (img) => {
      const row = names.push(img.name) - 1;
      trueLabels[row] = img.label;
      const { tensor } = await modelInput(model, img.data, img.name, { resizeShorter: opts.resizeShorter });
      return { tensors: [tensor], label: row };
    },
    model.runner,
    { batchSize: BATCH, table, onBatch: (rows) => opts.onProgress?.(rows) },
  );
  if (unknown.size > 0) {
    throw new DataError(
      `${opts.source}: ${[...unknown].slice(0, 5).join(', ')}${unknown.size > 5 ? ` and ${unknown.size - 5} more` : ''} ${unknown.size === 1 ? 'is not a class' : 'are not classes'} the model knows (it knows ${labels.slice(0, 3).join(', ')}, …): folders must be named as in training`,
    );
  }
  if (table.rows === 0) throw new DataError(`${opts.source} holds no images in <class>/<image> layout`);
  const predictions: Prediction[] = Array.from(table.labels, (row, r) => ({
    id: names[row]!,
    label: trueLabels[row]!,
    top5: topK(table.features, r, labels.length, 5),
    trueProbability: table.features[r * labels.length + trueLabels[row]!]!,
  }));
  const classes = labels.map((c, i) => ({ index: i, class: c, breed: parseClassName(c).breed }));
  return {
    model: { source: model.key, sha256: model.sha256 },
    images: table.rows,
    metrics: computeMetrics(predictions, classes),
  };
}
