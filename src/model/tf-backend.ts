import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import { InputError, PipelineError } from '../errors.ts';
import { type LogFields, logger } from '../log.ts';

// Picks the TensorFlow.js build at start. The native builds (libtensorflow, CUDA in the GPU
// container) are optional: they are imported by a name held in a variable so neither
// TypeScript nor a bundler requires them to be installed. Locally and in CI the pure-JS
// package with the WebAssembly backend runs (the native install downloads libtensorflow).

export type Tf = typeof import('@tensorflow/tfjs');
export type TfBackendChoice = 'auto' | 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';
export interface LoadedTf {
  tf: Tf;
  /** tf.getBackend(): 'tensorflow' for the native builds, else 'wasm' or 'cpu'. */
  backend: string;
  /** The npm package(s) that provide `tf`. */
  package: string;
}

const CHOICES: readonly TfBackendChoice[] = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];
/** What 'auto' tries, best first; 'cpu' (~8x slower than wasm here) only when asked for. */
const AUTO_ORDER = ['tfjs-node-gpu', 'tfjs-node', 'wasm'] as const;
const require = createRequire(import.meta.url);

export async function loadTf(preferred: TfBackendChoice = 'auto'): Promise<LoadedTf> {
  if (!CHOICES.includes(preferred))
    throw new InputError(`tf backend must be one of ${CHOICES.join(', ')}; got ${String(preferred)}`);
  const order = preferred === 'auto' ? AUTO_ORDER : [preferred];
  const skipped: string[] = [];
  for (const choice of order) {
    try {
      const { loaded, details } = await load(choice);
      logger.info('tensorflow.js backend chosen', {
        backend: loaded.backend,
        package: loaded.package,
        preferred,
        skipped: skipped.length > 0 ? skipped.join('; ') : undefined,
        ...details,
      });
      return loaded;
    } catch (err) {
      skipped.push(`${choice}: ${whyNot(err, choice)}`);
    }
  }
  if (preferred !== 'auto')
    throw new InputError(`tf backend ${preferred} is unavailable: ${skipped.join('; ')}`);
  throw new PipelineError(`no TensorFlow.js backend could be loaded: ${skipped.join('; ')}`);
}

interface Loaded {
  loaded: LoadedTf;
  /** What the log says beyond the names: GPU use, threads. */
  details: LogFields;
}

function load(choice: Exclude<TfBackendChoice, 'auto'>): Promise<Loaded> {
  switch (choice) {
    case 'tfjs-node-gpu':
    case 'tfjs-node':
      return loadNative(`@tensorflow/${choice}`);
    case 'wasm':
      return loadWasm();
    case 'cpu':
      return loadCpu();
  }
}

async function loadNative(pkg: string): Promise<Loaded> {
  const tf = tfFromModule(await import(pkg), pkg);
  // Importing the package registers and selects its 'tensorflow' backend.
  await tf.ready();
  const backend = tf.getBackend();
  if (backend !== 'tensorflow') throw new Error(`it selected backend ${backend}, not tensorflow`);
  // The GPU build falls back to the CPU when CUDA finds no device; its backend says which.
  const { isUsingGpuDevice } = tf.backend() as { isUsingGpuDevice?: unknown };
  return {
    loaded: { tf, backend, package: pkg },
    details: { gpu: typeof isUsingGpuDevice === 'boolean' ? isUsingGpuDevice : undefined },
  };
}

async function loadWasm(): Promise<Loaded> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // The backend looks for its .wasm binaries beside its own script, which a bundler moves;
  // the installed package's dist folder is where they are, and Node reads them from disk.
  wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}${sep}`);
  // No setThreadsCount: under Node tfjs 4.22 forces WASM_HAS_MULTITHREAD_SUPPORT off (its
  // threaded build spawns workers from blob URLs), so XNNPACK runs on one thread whatever is set.
  const tf = await selectPureJs('wasm');
  return {
    loaded: { tf, backend: 'wasm', package: '@tensorflow/tfjs + @tensorflow/tfjs-backend-wasm' },
    details: { threads: wasm.getThreadsCount() },
  };
}

async function loadCpu(): Promise<Loaded> {
  return {
    loaded: { tf: await selectPureJs('cpu'), backend: 'cpu', package: '@tensorflow/tfjs' },
    details: {},
  };
}

async function selectPureJs(backend: 'wasm' | 'cpu'): Promise<Tf> {
  const tf = tfFromModule(await import('@tensorflow/tfjs'), '@tensorflow/tfjs');
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
  return tf;
}

/** The packages are CommonJS: depending on the loader the API is the namespace or its default. */
function tfFromModule(ns: unknown, pkg: string): Tf {
  for (const candidate of [ns, (ns as { default?: unknown }).default]) {
    if (typeof (candidate as Partial<Tf> | undefined)?.setBackend === 'function') return candidate as Tf;
  }
  throw new Error(`${pkg} does not export the TensorFlow.js API`);
}

function whyNot(err: unknown, choice: string): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown }).code;
  if (code === 'ERR_MODULE_NOT_FOUND' && message.includes(`'@tensorflow/${choice}'`)) return 'not installed';
  // An installed build that cannot load (missing libcudart, wrong glibc) says why.
  return message.split('\n')[0]!;
}
