import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { InputError } from '../src/errors.ts';
import { findFeatureCutAsync, loadModel, mergeBackbones } from '../src/model/onnx-graph.ts';
import { type LoadOptions, modelInput, servingModelFromBytes } from '../src/model/serving-model.ts';
import { IMAGENET_PREPROCESS } from '../src/model/types.ts';

// The peak memory of classifying one upload, in a process of its own as on Lambda: the model
// loaded by the serving code (onnxruntime-node, CPU), one image preprocessed and classified.
// Lambda's "Max Memory Used" is the process's peak RSS, so that is what is read (VmHWM).
//
//   node bin/tsnode.mjs scripts/serving-memory.ts measure <image> <backbone.onnx>... \
//     [--flip] [--batch B] [--loaded N] [--off-thread]
//
// builds the model TrainModel would ship from those backbones (with an untrained head: its
// weights do not change the memory), runs it on B copies of the image in each of N sessions
// held at once (in worker threads with --off-thread, as Validate holds its model), and prints
// {modelMiB, peakRssMiB} as JSON.

const SELF = fileURLToPath(import.meta.url);
const TSNODE = fileURLToPath(new URL('../bin/tsnode.mjs', import.meta.url));
const MiB = 1024 * 1024;
/** The merged model of these backbones (ImageNet preprocessing) with a zero head. */
export async function buildServingModel(
  backbones: string[],
  // 120: Stanford Dogs' breed count, the head's width in the pipeline's real runs.
  { flip = false, classes: CLASSES = 120 }: { flip?: boolean; classes?: number } = {},
): Promise<Uint8Array> {
  const parts = [];
  for (const path of backbones) {
    const bytes = await readFile(path);
    parts.push({ bytes, cut: await findFeatureCutAsync(loadModel(bytes, path), { source: path }) });
  }
  const inputDim = parts.reduce((n, p) => n + p.cut.featureDim, 0);
  const head = {
    inputDim,
    classes: CLASSES,
    layers: [
      {
        weights: new Float32Array(inputDim * CLASSES),
        bias: new Float32Array(CLASSES),
        inDim: inputDim,
        outDim: CLASSES,
      },
    ],
  };
  const meta = {
    labels: JSON.stringify(
      Array.from({ length: CLASSES }, (_, i) => `n${String(i).padStart(8, '0')}-breed_${i}`),
    ),
    preprocess: JSON.stringify(IMAGENET_PREPROCESS),
    provenance: JSON.stringify({}),
  };
  return mergeBackbones(parts, head, meta, { flip, layout: IMAGENET_PREPROCESS.layout });
}

export interface ServingMemory {
  modelMiB: number;
  peakRssMiB: number;
}

/** Peak RSS of this process so far, in MiB (Linux /proc). */
async function peakRssMiB(): Promise<number> {
  const status = await readFile('/proc/self/status', 'utf8');
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  if (!kb) throw new Error('/proc/self/status has no VmHWM line: peak RSS is measured on Linux only');
  return Number(kb) / 1024;
}

export interface ServingLoad extends LoadOptions {
  /** Images per run: ClassifyUpload 1, ValidateShard its batch. */
  batch: number;
  /** Sessions held at once: the serving cache keeps up to MAX_LOADED models per container. */
  loaded: number;
}

/** In this process: load the model as the serving code does (`loaded` times) and classify. */
async function serve(modelPath: string, imagePath: string, load: ServingLoad): Promise<ServingMemory> {
  const bytes = await readFile(modelPath);
  const models = [];
  for (let i = 0; i < load.loaded; i++) {
    const model = await servingModelFromBytes(bytes, modelPath, load);
    const { tensor } = await modelInput(model, await readFile(imagePath), imagePath);
    await model.runner.run(Array.from({ length: load.batch }, () => tensor));
    models.push(model);
  }
  return { modelMiB: bytes.length / MiB, peakRssMiB: await peakRssMiB() };
}

/** Peak RSS of a fresh `node` process (default: this one's binary) that classifies with the model. */
export async function measureServing(
  model: Uint8Array,
  imagePath: string,
  load: ServingLoad = { batch: 1, loaded: 1 },
  node: string = process.execPath,
): Promise<ServingMemory> {
  const dir = await mkdtemp(join(tmpdir(), 'serving-memory-'));
  try {
    const modelPath = join(dir, 'model.onnx');
    await writeFile(modelPath, model);
    const { stdout } = await promisify(execFile)(node, [
      TSNODE,
      SELF,
      'serve',
      modelPath,
      imagePath,
      String(load.batch),
      String(load.loaded),
      load.offThread ? 'off-thread' : 'inline',
    ]);
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as ServingMemory;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  if (mode === 'serve' && rest.length === 5) {
    const [model, image, batch, loaded, placement] = rest as [string, string, string, string, string];
    const load = { batch: Number(batch), loaded: Number(loaded), offThread: placement === 'off-thread' };
    console.log(JSON.stringify(await serve(model, image, load)));
    return;
  }
  const option = (name: string, fallback: number) => {
    const i = rest.indexOf(name);
    if (i < 0) return fallback;
    const [value] = rest.splice(i, 2).slice(1);
    if (!Number.isInteger(Number(value)) || Number(value) < 1) {
      throw new InputError(`${name} needs a whole number of at least 1, got "${value}"`);
    }
    return Number(value);
  };
  const load = {
    batch: option('--batch', 1),
    loaded: option('--loaded', 1),
    offThread: rest.includes('--off-thread'),
  };
  const flip = rest.includes('--flip');
  const [image, ...backbones] = rest.filter((a) => a !== '--flip' && a !== '--off-thread');
  if (mode !== 'measure' || !image || backbones.length === 0) {
    throw new InputError(
      'usage: serving-memory.ts measure <image> <backbone.onnx>... [--flip] [--batch B] [--loaded N] [--off-thread]',
    );
  }
  const result = await measureServing(await buildServingModel(backbones, { flip }), image, load);
  console.log(JSON.stringify({ backbones, flip, ...load, ...result }));
}

if (process.argv[1] === SELF) await main(process.argv.slice(2));
