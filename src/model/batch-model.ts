import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataError } from '../errors.ts';
import { logger } from '../log.ts';
import { mapConcurrent } from '../util/concurrency.ts';
import { tensorSize } from './image-tensor.ts';
import type { PreprocessSpec } from './types.ts';

// An ONNX model run over images in batches with onnxruntime-node: backbone features for
// training, class probabilities for validation. The next batch is decoded while the current
// one runs (onnxruntime runs off the main thread), so neither waits on the other.

/** Images decoded at once: sharp's work runs on libuv's thread pool. */
const DECODE_CONCURRENCY = 4;

let cuda: boolean | undefined;

/** Where onnxruntime-node's CUDA provider library goes: beside its binding (the npm install
 * downloads it on GPU machines; here it is skipped). */
export function cudaProviderLibrary(): string {
  const binding = dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
  const dir = join(binding, '..', 'bin', 'napi-v6', process.platform, process.arch);
  return join(dir, 'libonnxruntime_providers_cuda.so');
}

/** Asking for 'cuda' without the provider library only logs errors and runs on the CPU anyway. */
function hasCudaProvider(): boolean {
  cuda ??= existsSync(cudaProviderLibrary());
  return cuda;
}

export class OnnxBatchModel {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly outputDim: number,
    readonly spec: PreprocessSpec,
    readonly provider: string,
  ) {}

  /** CUDA when onnxruntime's CUDA provider is installed (the GPU container), else CPU. */
  static async create(
    model: Uint8Array,
    opts: { outputDim: number; spec: PreprocessSpec; threads?: number },
  ): Promise<OnnxBatchModel> {
    const base: ort.InferenceSession.SessionOptions = {
      // Measured on 2 cores: all cores for onnxruntime beat leaving one to decoding (bench features).
      intraOpNumThreads: opts.threads ?? availableParallelism(),
      graphOptimizationLevel: 'all',
    };
    const provider = hasCudaProvider() ? 'cuda' : 'cpu';
    const session = await ort.InferenceSession.create(model, { ...base, executionProviders: [provider] });
    return new OnnxBatchModel(session, opts.outputDim, opts.spec, provider);
  }

  /** The model's output for a batch of input tensors, row-major [n × outputDim]. */
  async run(tensors: readonly Float32Array[]): Promise<Float32Array> {
    const size = tensorSize(this.spec);
    const input = new Float32Array(tensors.length * size);
    tensors.forEach((t, i) => {
      input.set(t, i * size);
    });
    const { cropSize: s, layout } = this.spec;
    const dims = layout === 'NCHW' ? [tensors.length, 3, s, s] : [tensors.length, s, s, 3];
    const out = await this.session.run({
      [this.session.inputNames[0]!]: new ort.Tensor('float32', input, dims),
    });
    const data = out[this.session.outputNames[0]!]!.data as Float32Array;
    if (data.length !== tensors.length * this.outputDim) {
      throw new DataError(
        `the model returned ${data.length / tensors.length} values per image, expected ${this.outputDim}`,
      );
    }
    return data;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Rows appended batch by batch without knowing the total in advance. */
export class RowTable {
  private data: Float32Array;
  private labelData: Int32Array;
  rows = 0;

  constructor(readonly dim: number) {
    this.data = new Float32Array(dim * 1024);
    this.labelData = new Int32Array(1024);
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
  opts: { batchSize: number; table: RowTable; onBatch?: (rows: number) => void },
): Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const runBatch = async (tensors: Float32Array[], labels: number[]) => {
    for (let i = 0; i < tensors.length; i += opts.batchSize) {
      const features = await extractor.run(tensors.slice(i, i + opts.batchSize));
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
