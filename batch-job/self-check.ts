import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { errorMessage } from '../src/errors.ts';
import { cudaProviderLibrary } from '../src/model/batch-model.ts';
import { evalView } from '../src/model/image-tensor.ts';
import { loadTf } from '../src/model/tf-backend.ts';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../src/model/types.ts';
import { listGpuDevices, tfUsesGpu } from '../src/training/devices.ts';

// `train.mjs --self-check`: loads every native module the job uses and runs a little work
// through each (sharp decodes a JPEG, onnxruntime runs a model on it, TensorFlow.js multiplies
// two matrices), then prints one JSON report. The image build runs it with --require-gpu-stack,
// which also demands the GPU builds and the CUDA libraries each one loads at run time, so an
// image whose native parts cannot work is never pushed. No GPU is needed to run it.

const require = createRequire(import.meta.url);

/** What libtensorflow 2.9 (tfjs-node-gpu 4.22, built for CUDA 11.2 / cuDNN 8.1) dlopens for its GPU device. */
export const TF_CUDA_LIBRARIES = [
  'libcudart.so.11.0',
  'libcublas.so.11',
  'libcublasLt.so.11',
  'libcufft.so.10',
  'libcurand.so.10',
  'libcusolver.so.11',
  'libcusparse.so.11',
  'libcudnn.so.8',
] as const;

/** Provided by the NVIDIA driver, which the container runtime mounts when the job starts. */
const DRIVER_LIBRARIES = new Set(['libcuda.so.1', 'libnvidia-ml.so.1']);

export interface ModuleCheck {
  installed: boolean;
  loaded: boolean;
  version?: string;
  error?: string;
}

export interface SelfCheckReport {
  ok: boolean;
  node: string;
  napi: string;
  platform: string;
  gpuDevices: string[];
  modules: Record<'sharp' | 'onnxruntime-node' | '@tensorflow/tfjs-node-gpu', ModuleCheck>;
  tensorflow: { backend: string; package: string; gpu: boolean } | null;
  onnxruntime: {
    /** The execution providers this onnxruntime-node build knows, and whether each is ready. */
    providers: { name: string; available: boolean }[];
    /** The provider the test session ran on. */
    ranOn: string | null;
    /** Shared libraries the CUDA provider links to that the dynamic linker cannot find. */
    cudaMissingLibraries: string[];
  };
  /** CUDA 11 / cuDNN 8 libraries tfjs-node-gpu needs that are not installed. */
  tensorflowCudaMissingLibraries: string[];
  failures: string[];
}

export interface SelfCheckOptions {
  /** Also fail when a GPU build or a CUDA library it needs is missing (the image build). */
  requireGpuStack: boolean;
}

export async function selfCheck(opts: SelfCheckOptions): Promise<SelfCheckReport> {
  const failures: string[] = [];
  const gpuDevices = listGpuDevices();

  const spec: PreprocessSpec = { ...IMAGENET_PREPROCESS, resizeShorter: 18, cropSize: 16 };
  let input: Float32Array | undefined;
  const sharpCheck: ModuleCheck = { installed: true, loaded: false, version: sharp.versions.sharp };
  try {
    const jpeg = await sharp({ create: { width: 24, height: 20, channels: 3, background: '#a0522d' } })
      .jpeg()
      .toBuffer();
    input = await evalView(jpeg, spec, 'self-check.jpg');
    sharpCheck.loaded = true;
  } catch (err) {
    sharpCheck.error = errorMessage(err);
    failures.push(`sharp: ${sharpCheck.error}`);
  }

  const ortCheck: ModuleCheck = { installed: true, loaded: false, version: ort.env.versions.node };
  const cudaProviderLib = cudaProviderLibrary();
  const cudaInstalled = existsSync(cudaProviderLib);
  const cudaMissingLibraries = cudaInstalled ? missingDependencies(cudaProviderLib) : [];
  let ranOn: string | null = null;
  try {
    // The CPU always; CUDA too when a GPU is here to run it (the image build has none).
    const providers = cudaInstalled && gpuDevices.length > 0 ? ['cuda', 'cpu'] : ['cpu'];
    for (const provider of providers) {
      await runTinyModel(provider, input ?? new Float32Array(3 * 16 * 16), spec.cropSize);
      ranOn ??= provider;
    }
    ortCheck.loaded = true;
  } catch (err) {
    ortCheck.error = errorMessage(err);
    failures.push(`onnxruntime-node: ${ortCheck.error}`);
  }
  const providers = ort.listSupportedBackends().map((b) => ({
    name: b.name,
    available: b.name === 'cuda' ? cudaInstalled && cudaMissingLibraries.length === 0 : b.bundled,
  }));

  const tfGpu = await checkTfjsNodeGpu();
  if (tfGpu.installed && !tfGpu.loaded) failures.push(`@tensorflow/tfjs-node-gpu: ${tfGpu.error}`);
  let tensorflow: SelfCheckReport['tensorflow'] = null;
  try {
    const loaded = await loadTf('auto');
    const product = loaded.tf.tidy(() => loaded.tf.matMul(loaded.tf.ones([2, 3]), loaded.tf.ones([3, 2])));
    const values = await product.data();
    product.dispose();
    if (values[0] !== 3) throw new Error(`a 2×3 by 3×2 matMul of ones gave ${values[0]}, not 3`);
    tensorflow = { backend: loaded.backend, package: loaded.package, gpu: tfUsesGpu(loaded) };
  } catch (err) {
    failures.push(`tensorflow.js: ${errorMessage(err)}`);
  }

  const tensorflowCudaMissingLibraries = missingLibraries(TF_CUDA_LIBRARIES);
  if (opts.requireGpuStack) {
    if (!tfGpu.installed) failures.push('@tensorflow/tfjs-node-gpu is not installed');
    if (tensorflow && tensorflow.backend !== 'tensorflow')
      failures.push(`TensorFlow.js runs on ${tensorflow.backend}, not the native tensorflow backend`);
    if (!cudaInstalled)
      failures.push(`onnxruntime-node's CUDA provider is not installed (${cudaProviderLib})`);
    if (cudaMissingLibraries.length > 0)
      failures.push(`onnxruntime's CUDA provider cannot find ${cudaMissingLibraries.join(', ')}`);
    if (tensorflowCudaMissingLibraries.length > 0)
      failures.push(
        `tfjs-node-gpu's CUDA libraries are missing: ${tensorflowCudaMissingLibraries.join(', ')}`,
      );
  }

  return {
    ok: failures.length === 0,
    node: process.version,
    napi: process.versions.napi ?? 'unknown',
    platform: `${process.platform}-${process.arch}`,
    gpuDevices,
    modules: { sharp: sharpCheck, 'onnxruntime-node': ortCheck, '@tensorflow/tfjs-node-gpu': tfGpu },
    tensorflow,
    onnxruntime: { providers, ranOn, cudaMissingLibraries },
    tensorflowCudaMissingLibraries,
    failures,
  };
}

async function runTinyModel(provider: string, input: Float32Array, size: number): Promise<void> {
  const session = await ort.InferenceSession.create(buildTinyBackbone({ inputSize: size }), {
    executionProviders: [provider],
  });
  try {
    const out = await session.run({
      [session.inputNames[0]!]: new ort.Tensor('float32', input, [1, 3, size, size]),
    });
    const values = out[session.outputNames[0]!]!.data as Float32Array;
    if (values.length === 0 || !values.every(Number.isFinite))
      throw new Error(`the test model gave no finite output on ${provider}`);
  } finally {
    await session.release();
  }
}

async function checkTfjsNodeGpu(): Promise<ModuleCheck> {
  const pkg = '@tensorflow/tfjs-node-gpu';
  try {
    require.resolve(pkg);
  } catch {
    return { installed: false, loaded: false };
  }
  try {
    const loaded = await loadTf('tfjs-node-gpu');
    return { installed: true, loaded: true, version: loaded.tf.version_core };
  } catch (err) {
    return { installed: true, loaded: false, error: errorMessage(err) };
  }
}

/** `ldd` lines "libfoo.so.1 => not found", but for the driver's own libraries. */
export function parseLddMissing(lddOutput: string): string[] {
  const missing: string[] = [];
  for (const line of lddOutput.split('\n')) {
    const m = /^\s*(\S+)\s*=>\s*not found/.exec(line);
    if (m && !DRIVER_LIBRARIES.has(m[1]!)) missing.push(m[1]!);
  }
  return missing;
}

/** The sonames in the dynamic linker's cache (`ldconfig -p`). */
export function parseLdconfigCache(output: string): Set<string> {
  const names = new Set<string>();
  for (const line of output.split('\n')) {
    const m = /^\s+(\S+)\s+\(/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

function missingDependencies(lib: string): string[] {
  // onnxruntime loads libonnxruntime_providers_shared.so from the provider's own folder first;
  // ldd has to be told to look there too.
  const libraryPath = [dirname(lib), process.env.LD_LIBRARY_PATH].filter(Boolean).join(delimiter);
  try {
    const env = { ...process.env, LD_LIBRARY_PATH: libraryPath };
    return parseLddMissing(execFileSync('ldd', [lib], { encoding: 'utf8', env }));
  } catch (err) {
    return [`(ldd ${lib} failed: ${errorMessage(err).split('\n')[0]})`];
  }
}

/** Of `sonames`, those neither in the linker cache nor in an LD_LIBRARY_PATH folder (where dlopen looks). */
function missingLibraries(sonames: readonly string[]): string[] {
  let cache = new Set<string>();
  for (const ldconfig of ['/sbin/ldconfig', 'ldconfig']) {
    try {
      cache = parseLdconfigCache(execFileSync(ldconfig, ['-p'], { encoding: 'utf8' }));
      break;
    } catch {
      // not on this PATH, or not Linux: only LD_LIBRARY_PATH is searched below
    }
  }
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(delimiter).filter(Boolean);
  return sonames.filter((name) => !cache.has(name) && !dirs.some((d) => existsSync(join(d, name))));
}
