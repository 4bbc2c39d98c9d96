import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { DataError } from '../errors.ts';
import { logger } from '../log.ts';
import { mapConcurrent } from '../util/concurrency.ts';
import { TensorPool, tensorSize } from './image-tensor.ts';
import type { PreprocessSpec } from './types.ts';

// An ONNX model run over images in batches with onnxruntime-node: backbone features for
// training, class probabilities for validation. The next batch is decoded while the current
// one runs, so neither waits on the other. onnxruntime-node's `session.run` is synchronous on
// the thread that calls it (its promise only defers the call to setImmediate): on the main
// thread it would hold up sharp's completions, and so the decoding of the next batch, for as
// long as each batch runs. For that use the session lives in a worker thread (`offThread`).

/** Images decoded at once: sharp's work runs on libuv's thread pool. */
export const DECODE_CONCURRENCY = 4;

let cuda: boolean | undefined;

const ortPath = () => createRequire(import.meta.url).resolve('onnxruntime-node');

/** Where onnxruntime-node's CUDA provider library goes: beside its binding (the npm install
 * downloads it on GPU machines; here it is skipped). */
export function cudaProviderLibrary(): string {
  const dir = join(dirname(ortPath()), '..', 'bin', 'napi-v6', process.platform, process.arch);
  return join(dir, 'libonnxruntime_providers_cuda.so');
}

/** Asking for 'cuda' without the provider library only logs errors and runs on the CPU anyway. */
function hasCudaProvider(): boolean {
  cuda ??= existsSync(cudaProviderLibrary());
  return cuda;
}

/** The CPU session settings of every OnnxBatchModel (the features bench runs a bare session with them). */
export function sessionOptions(threads = availableParallelism()): ort.InferenceSession.SessionOptions {
  return {
    // Measured on 2 cores: all cores for onnxruntime beat leaving one to decoding (bench features).
    intraOpNumThreads: threads,
    graphOptimizationLevel: 'all',
    // No busy-waiting between parallel sections: a spinning onnxruntime thread takes the core
    // from sharp's decoding (bench features: pipeline CPU per view −25% with it off). Only the
    // way threads wait changes, not the numbers.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** What the main thread asks of the session's worker; each request goes with an id, and gets one reply with it. */
type Request =
  | { type: 'create'; model: Uint8Array; options: ort.InferenceSession.SessionOptions }
  | { type: 'run'; input: Float32Array; dims: number[] }
  | { type: 'release' };
type Reply = { id: number; output?: Float32Array; input?: Float32Array<ArrayBuffer>; error?: string };

/** The worker: plain CommonJS (no build step, no TypeScript loader in worker threads). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
let session;
parentPort.on('message', async (m) => {
  try {
    if (m.type === 'create') {
      session = await ort.InferenceSession.create(m.model, m.options);
      parentPort.postMessage({ id: m.id });
    } else if (m.type === 'run') {
      const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', m.input, m.dims) };
      const out = await session.run(feeds);
      parentPort.postMessage({ id: m.id, output: out[session.outputNames[0]].data, input: m.input }, [m.input.buffer]);
    } else {
      await session.release();
      parentPort.postMessage({ id: m.id });
    }
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String((err && err.message) || err) });
  }
});
`;

/** Where a model's session runs: on this thread, or in a worker thread of its own. */
interface SessionHost {
  /** The output; the input comes back to be reused (it was moved to the worker and back). */
  run(
    input: Float32Array<ArrayBuffer>,
    dims: number[],
  ): Promise<{ output: Float32Array; input?: Float32Array<ArrayBuffer> }>;
  close(): Promise<void>;
}

class InlineSession implements SessionHost {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(
    model: Uint8Array,
    options: ort.InferenceSession.SessionOptions,
  ): Promise<InlineSession> {
    return new InlineSession(await ort.InferenceSession.create(model, options));
  }

  async run(input: Float32Array<ArrayBuffer>, dims: number[]) {
    const out = await this.session.run({
      [this.session.inputNames[0]!]: new ort.Tensor('float32', input, dims),
    });
    return { output: out[this.session.outputNames[0]!]!.data as Float32Array, input };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** An onnxruntime session in a worker thread; the worker holds the process open only while a call is pending. */
class WorkerSession implements SessionHost {
  private readonly worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath: ortPath() } });
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  private constructor() {
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => {
      const call = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.worker.unref();
      if (reply.error !== undefined) call?.reject(new Error(reply.error));
      else call?.resolve(reply);
    });
    const failAll = (err: Error) => {
      for (const call of this.pending.values()) call.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', failAll);
    this.worker.on('exit', (code) =>
      failAll(new Error(`the onnxruntime worker thread exited (code ${code})`)),
    );
  }

  static async create(
    model: Uint8Array,
    options: ort.InferenceSession.SessionOptions,
  ): Promise<WorkerSession> {
    const host = new WorkerSession();
    try {
      await host.call({ type: 'create', model, options });
    } catch (err) {
      await host.worker.terminate();
      throw err;
    }
    return host;
  }

  private call(request: Request, transfer: ArrayBuffer[] = []): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id }, transfer);
    });
  }

  async run(input: Float32Array<ArrayBuffer>, dims: number[]) {
    const reply = await this.call({ type: 'run', input, dims }, [input.buffer]);
    return { output: reply.output ?? new Float32Array(0), input: reply.input };
  }

  async close(): Promise<void> {
    try {
      await this.call({ type: 'release' });
    } finally {
      await this.worker.terminate();
    }
  }
}

/**
 * Input tensors as one batch: their values one after another in `into` (reused when it has the
 * right length) and the shape the spec's layout gives. OnnxBatchModel.run feeds the model this
 * way; the benches build their bare-session batches with it too.
 */
export function packBatch(
  tensors: readonly Float32Array[],
  spec: PreprocessSpec,
  into?: Float32Array<ArrayBuffer>,
): { data: Float32Array<ArrayBuffer>; dims: number[] } {
  const size = tensorSize(spec);
  const length = tensors.length * size;
  const data = into?.length === length ? into : new Float32Array(length);
  tensors.forEach((t, i) => {
    data.set(t, i * size);
  });
  const { cropSize: s, layout } = spec;
  return { data, dims: layout === 'NCHW' ? [tensors.length, 3, s, s] : [tensors.length, s, s, 3] };
}

export class OnnxBatchModel {
  /** The last batch's input buffer, free to be filled again. */
  private spare: Float32Array<ArrayBuffer> | undefined;
  /** Input tensors for callers that decode into reused ones (runBatched's `pool`), for the model's lifetime. */
  readonly inputs: TensorPool;

  private constructor(
    private host: Promise<SessionHost> | undefined,
    private readonly openHost: () => Promise<SessionHost>,
    readonly outputDim: number,
    readonly spec: PreprocessSpec,
    readonly provider: string,
  ) {
    this.inputs = new TensorPool(tensorSize(spec));
  }

  /**
   * CUDA when onnxruntime's CUDA provider is installed (the GPU container), else CPU.
   * `offThread`: the session runs in a worker thread, for batches decoded while it runs
   * (runBatched). Serving keeps it on this thread: a worker per held model raised the peak RSS
   * of ClassifyUpload holding four ensembles past what its memory setting allows (package test).
   * `lazy`: the session is created by the first `run`, so a job whose every batch is cached
   * never pays for it (TrainModel on a rerun); a model that cannot load fails there.
   */
  static async create(
    model: Uint8Array,
    opts: { outputDim: number; spec: PreprocessSpec; threads?: number; offThread?: boolean; lazy?: boolean },
  ): Promise<OnnxBatchModel> {
    const provider = hasCudaProvider() ? 'cuda' : 'cpu';
    const options = { ...sessionOptions(opts.threads), executionProviders: [provider] };
    const open = () =>
      opts.offThread ? WorkerSession.create(model, options) : InlineSession.create(model, options);
    const host = opts.lazy ? undefined : await open();
    return new OnnxBatchModel(host && Promise.resolve(host), open, opts.outputDim, opts.spec, provider);
  }

  /** The model's output for a batch of input tensors, row-major [n × outputDim]. */
  async run(tensors: readonly Float32Array[]): Promise<Float32Array> {
    const { data: input, dims } = packBatch(tensors, this.spec, this.spare);
    this.spare = undefined;
    this.host ??= this.openHost();
    const { output: data, input: back } = await (await this.host).run(input, dims);
    this.spare = back;
    if (data.length !== tensors.length * this.outputDim) {
      throw new DataError(
        `the model returned ${data.length / tensors.length} values per image, expected ${this.outputDim}`,
      );
    }
    return data;
  }

  /** Closes the session, if one was opened. */
  async release(): Promise<void> {
    await this.host?.then(
      (host) => host.close(),
      () => undefined,
    );
  }
}

/** Rows appended batch by batch without knowing the total in advance. */
export class RowTable {
  private data: Float32Array;
  private labelData: Int32Array;
  rows = 0;

  constructor(
    readonly dim: number,
    capacity = 1024,
  ) {
    this.data = new Float32Array(dim * capacity);
    this.labelData = new Int32Array(capacity);
  }

  /** A full table over arrays that already hold its rows, without copying them. */
  static over(dim: number, features: Float32Array, labels: Int32Array): RowTable {
    const table = new RowTable(dim, 0);
    table.data = features;
    table.labelData = labels;
    table.rows = labels.length;
    return table;
  }

  /** Tables one after another, copied once into a table of exactly their size. */
  static concat(dim: number, tables: readonly RowTable[]): RowTable {
    const table = new RowTable(
      dim,
      tables.reduce((n, t) => n + t.rows, 0),
    );
    for (const t of tables) table.push(t.features, t.labels);
    return table;
  }

  push(features: Float32Array, labels: ArrayLike<number>): void {
    const needed = this.rows + labels.length;
    if (needed > this.labelData.length) {
      const capacity = Math.max(needed, this.labelData.length * 2);
      const data = new Float32Array(capacity * this.dim);
      data.set(this.data.subarray(0, this.rows * this.dim));
      const labelData = new Int32Array(capacity);
      labelData.set(this.labelData.subarray(0, this.rows));
      this.data = data;
      this.labelData = labelData;
    }
    this.data.set(features, this.rows * this.dim);
    this.labelData.set(labels, this.rows);
    this.rows = needed;
  }

  get features(): Float32Array {
    return this.data.subarray(0, this.rows * this.dim);
  }

  get labels(): Int32Array {
    return this.labelData.subarray(0, this.rows);
  }
}

async function* chunks<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    if (chunk.length === size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

/**
 * The model's output for every view of every item. `views` turns one item into its input
 * tensors (one evaluation view, or several augmented ones) and its label.
 */
export async function runBatched<T>(
  items: AsyncIterable<T>,
  views: (item: T) => Promise<{ tensors: Float32Array[]; label: number }>,
  extractor: OnnxBatchModel,
  opts: {
    batchSize: number;
    table: RowTable;
    onBatch?: (rows: number) => void;
    /** Where `views` takes its tensors from: each goes back once its batch is copied in. */
    pool?: TensorPool;
  },
): Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const runBatch = async (tensors: Float32Array[], labels: number[]) => {
    for (let i = 0; i < tensors.length; i += opts.batchSize) {
      const batch = tensors.slice(i, i + opts.batchSize);
      const features = await extractor.run(batch);
      opts.pool?.give(batch);
      opts.table.push(features, labels.slice(i, i + opts.batchSize));
    }
    opts.onBatch?.(opts.table.rows);
  };
  for await (const group of chunks(items, opts.batchSize)) {
    const decoded = await mapConcurrent(group, DECODE_CONCURRENCY, views);
    await running;
    const tensors = decoded.flatMap((d) => d.tensors);
    const labels = decoded.flatMap((d) => d.tensors.map(() => d.label));
    running = runBatch(tensors, labels);
    // Awaited next round; meanwhile a failure must not count as an unhandled rejection.
    running.catch(() => undefined);
  }
  await running;
  if (opts.table.rows === 0) logger.warn('no images to run the model on');
}
