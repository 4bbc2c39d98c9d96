import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS } from '../config.ts';
import { DataError } from '../errors.ts';
import { preprocessImage } from '../imaging/preprocess-image.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { OnnxBatchModel } from './batch-model.ts';
import { evalView } from './image-tensor.ts';
import { loadModel } from './onnx-graph.ts';
import type { PreprocessSpec } from './types.ts';

// A model this pipeline produced, ready to classify: the ONNX session plus what the model's own
// metadata says (labels, preprocessing). Loaded once per container and kept in memory, and in
// /tmp by checksum, across warm invocations; a changed object is loaded again.

export interface ModelMeta {
  labels: string[];
  preprocess: PreprocessSpec;
  provenance: Record<string, unknown>;
}

export interface ServingModel {
  key: string;
  sha256: string;
  meta: ModelMeta;
  runner: OnnxBatchModel;
}

function prop(props: { key?: string | null; value?: string | null }[], key: string, source: string): unknown {
  const raw = props.find((p) => p.key === key)?.value;
  if (raw === undefined || raw === null) {
    throw new DataError(
      `${source} has no "${key}" metadata: it was not produced by this pipeline's TrainModel`,
    );
  }
  try {
    return JSON.parse(raw);
  } catch {
    throw new DataError(`${source}: metadata "${key}" is not valid JSON`);
  }
}

/** Labels, preprocessing and provenance from a model's metadata_props, checked. */
export function readModelMeta(bytes: Uint8Array, source: string): ModelMeta {
  const props = loadModel(bytes, source).metadataProps ?? [];
  const labels = prop(props, 'labels', source);
  const preprocess = prop(props, 'preprocess', source) as PreprocessSpec;
  if (!Array.isArray(labels) || labels.length < 2 || !labels.every((l) => typeof l === 'string')) {
    throw new DataError(`${source}: metadata "labels" must list at least 2 class names`);
  }
  if (!preprocess || !Number.isInteger(preprocess.cropSize) || !Number.isInteger(preprocess.resizeShorter)) {
    throw new DataError(`${source}: metadata "preprocess" lacks cropSize/resizeShorter`);
  }
  return {
    labels,
    preprocess,
    provenance: (prop(props, 'provenance', source) ?? {}) as Record<string, unknown>,
  };
}

const CACHE_DIR = join(tmpdir(), 'dogbreed-models');

async function cachedBytes(store: ObjectStore, key: string, sha256: string | undefined): Promise<Buffer> {
  const path = sha256 ? join(CACHE_DIR, `${sha256}.onnx`) : undefined;
  if (path) {
    const hit = await readFile(path).catch(() => undefined);
    if (hit && createHash('sha256').update(hit).digest('hex') === sha256) return hit;
  }
  const bytes = await store.getBytes(key);
  if (path) {
    await mkdir(CACHE_DIR, { recursive: true });
    // Written aside and renamed, so a concurrent reader never sees half a model.
    await writeFile(`${path}.${process.pid}.partial`, bytes);
    await rename(`${path}.${process.pid}.partial`, path);
    await pruneCache();
  }
  return bytes;
}

/**
 * Keeps the newest MAX_LOADED models in /tmp: a warm container that sees the champion change
 * many times would otherwise fill Lambda's 512 MB of /tmp (an ensemble is about 50 MB).
 */
async function pruneCache(): Promise<void> {
  const files = (await readdir(CACHE_DIR)).filter((f) => f.endsWith('.onnx'));
  const dated = await Promise.all(
    files.map(async (f) => ({
      f,
      mtime: (await stat(join(CACHE_DIR, f)).catch(() => undefined))?.mtimeMs ?? 0,
    })),
  );
  dated.sort((a, b) => b.mtime - a.mtime);
  await Promise.all(dated.slice(MAX_LOADED).map(({ f }) => rm(join(CACHE_DIR, f), { force: true })));
}

/** Loaded models by key and checksum; a promise, so concurrent first calls share one load. */
const loaded = new Map<string, Promise<ServingModel>>();
/** Enough for a run's model and the champion; the oldest is released beyond that. */
export const MAX_LOADED = 4;

/** Where a loaded model's session runs (OnnxBatchModel.create's `offThread`); serving keeps it on this thread. */
export interface LoadOptions {
  offThread?: boolean;
}

/** A model from its bytes (a file given to `dogbreed evaluate`, or an object). */
export async function servingModelFromBytes(
  bytes: Uint8Array,
  source: string,
  opts: LoadOptions = {},
): Promise<ServingModel> {
  const meta = readModelMeta(bytes, source);
  const runner = await OnnxBatchModel.create(bytes, {
    outputDim: meta.labels.length,
    spec: meta.preprocess,
    offThread: opts.offThread,
  });
  return { key: source, sha256: createHash('sha256').update(bytes).digest('hex'), meta, runner };
}

async function load(
  store: ObjectStore,
  key: string,
  sha256: string | undefined,
  opts: LoadOptions,
): Promise<ServingModel> {
  const bytes = await cachedBytes(store, key, sha256);
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (sha256 && actual !== sha256) {
    throw new DataError(
      `s3://${store.bucket}/${key} has sha256 ${actual}, its metadata says ${sha256}: the object is damaged`,
    );
  }
  return servingModelFromBytes(bytes, key, opts);
}

/**
 * The model at `key`, from memory unless the object changed since it was loaded. A model is
 * held once per placement of its session: on this thread, or in a worker (`offThread`).
 */
export async function loadServingModel(
  store: ObjectStore,
  key: string,
  opts: LoadOptions = {},
): Promise<ServingModel> {
  const info = await store.head(key);
  if (!info) throw new DataError(`no model at s3://${store.bucket}/${key}: has TrainModel run for it?`);
  const id = `${store.bucket}/${key}@${info.metadata.sha256 ?? info.etag}${opts.offThread ? ' off-thread' : ''}`;
  let model = loaded.get(id);
  if (!model) {
    model = load(store, key, info.metadata.sha256, opts);
    loaded.set(id, model);
    model.catch(() => loaded.delete(id));
    if (loaded.size > MAX_LOADED) {
      const [oldest] = loaded.keys();
      const evicted = loaded.get(oldest!);
      loaded.delete(oldest!);
      void evicted?.then((m) => m.runner.release()).catch(() => undefined);
    }
  }
  return model;
}

/** The shorter side Preprocess gave the model's training images (`--resize`), so other images get the same pixels. */
export function trainedShorterSide(model: ServingModel): number {
  const trained = model.meta.provenance.shardShorterSide;
  return typeof trained === 'number' ? trained : DEFAULTS.resizeShorter;
}

/**
 * An original image as the pipeline shows it to its model: Preprocess's resize and re-encode,
 * then the model's own evaluation view. `dogbreed evaluate` and upload classification share it,
 * so both see exactly what Validate saw.
 */
export async function modelInput(
  model: ServingModel,
  image: Buffer,
  name: string,
  opts: { resizeShorter?: number; maxPixels?: number } = {},
): Promise<{ tensor: Float32Array; sourceWidth: number; sourceHeight: number }> {
  const resizeShorter = opts.resizeShorter ?? trainedShorterSide(model);
  const pre = await preprocessImage(image, { resizeShorter, maxPixels: opts.maxPixels, name });
  const tensor = await evalView(pre.jpeg, model.meta.preprocess, name);
  return { tensor, sourceWidth: pre.sourceWidth, sourceHeight: pre.sourceHeight };
}
