import { readdirSync, readFileSync } from 'node:fs';
import { logger } from '../log.ts';
import type { LoadedTf } from '../model/tf-backend.ts';

// Which device each library actually ran on, recorded in training.json, and a warning when a
// GPU instance trained on the CPU (a missing CUDA library makes both libraries fall back
// silently, so the run would only look slow).
//
// GPU presence is read from /dev: the NVIDIA container runtime creates /dev/nvidia0,
// /dev/nvidia1, … only for the GPUs assigned to the container (AWS Batch assigns them from the
// job's GPU resource requirement). NVIDIA_VISIBLE_DEVICES is no evidence: the CUDA base image
// sets it to "all" whether or not the instance has a GPU.

export interface DeviceRecord {
  /** A GPU was assigned to this process: some /dev/nvidiaN exists. */
  gpuPresent: boolean;
  /** The device nodes found, e.g. ["/dev/nvidia0"]. */
  gpuDevices: string[];
  tensorflow: {
    /** tf.getBackend(): 'tensorflow' (native), 'wasm' or 'cpu'. */
    backend: string;
    package: string;
    /** The native backend's own answer (libtensorflow found a CUDA device); false otherwise. */
    gpu: boolean;
  };
  onnxruntime: {
    /** The execution provider the session was created with. */
    provider: string;
    /** provider is 'cuda' and its library (libonnxruntime_providers_cuda.so) is loaded in this process. */
    gpu: boolean;
  };
  /** One line per library that ran on the CPU although a GPU is present. */
  warnings: string[];
}

/** The NVIDIA GPU device nodes among the names in /dev (not nvidiactl, nvidia-uvm, …). */
export function gpuDeviceNodes(devEntries: readonly string[]): string[] {
  return devEntries
    .filter((name) => /^nvidia\d+$/.test(name))
    .sort()
    .map((name) => `/dev/${name}`);
}

/** Whether a shared library whose file name starts with `name` is mapped into this process. */
export function libraryLoaded(name: string, maps: string): boolean {
  return maps.split('\n').some((line) => line.slice(line.lastIndexOf('/') + 1).startsWith(name));
}

export interface DeviceObservation {
  gpuDevices: string[];
  tf: Pick<LoadedTf, 'backend' | 'package'> & { gpu: boolean };
  onnxProvider: string;
  onnxCudaLoaded: boolean;
}

/** The record and its warnings, from what was observed (pure: tests inject the observation). */
export function deviceRecord(o: DeviceObservation): DeviceRecord {
  const gpuPresent = o.gpuDevices.length > 0;
  const ortGpu = o.onnxProvider === 'cuda' && o.onnxCudaLoaded;
  const warnings: string[] = [];
  if (gpuPresent && !o.tf.gpu) {
    warnings.push(
      `a GPU is present (${o.gpuDevices.join(', ')}) but TensorFlow.js trained the head on the CPU (backend ${o.tf.backend}, ${o.tf.package}): tfjs-node-gpu needs CUDA 11 (libcudart.so.11.0, libcublas.so.11) and cuDNN 8 (libcudnn.so.8) — see batch-job/README.md`,
    );
  }
  if (gpuPresent && !ortGpu) {
    warnings.push(
      `a GPU is present (${o.gpuDevices.join(', ')}) but onnxruntime computed the features on the CPU (provider ${o.onnxProvider}${o.onnxProvider === 'cuda' ? ', its CUDA library was not loaded' : ''}): onnxruntime-node needs its CUDA provider (ONNXRUNTIME_NODE_INSTALL=cuda12), CUDA 12 and cuDNN 9 — see batch-job/README.md`,
    );
  }
  return {
    gpuPresent,
    gpuDevices: o.gpuDevices,
    tensorflow: { backend: o.tf.backend, package: o.tf.package, gpu: o.tf.gpu },
    onnxruntime: { provider: o.onnxProvider, gpu: ortGpu },
    warnings,
  };
}

/** What the native TensorFlow backend says about its device; the wasm and cpu backends never use one. */
export function tfUsesGpu(loaded: LoadedTf): boolean {
  if (loaded.backend !== 'tensorflow') return false;
  return (loaded.tf.backend() as { isUsingGpuDevice?: unknown }).isUsingGpuDevice === true;
}

export function listGpuDevices(): string[] {
  try {
    return gpuDeviceNodes(readdirSync('/dev'));
  } catch {
    return [];
  }
}

/** This process's mapped files (Linux); empty elsewhere, where no CUDA library is ever loaded. */
function processMaps(): string {
  try {
    return readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return '';
  }
}

/** Observes this process, logs a warning per library on the CPU beside a GPU, returns the record. */
export function recordDevices(loaded: LoadedTf, onnxProvider: string): DeviceRecord {
  const record = deviceRecord({
    gpuDevices: listGpuDevices(),
    tf: { backend: loaded.backend, package: loaded.package, gpu: tfUsesGpu(loaded) },
    onnxProvider,
    onnxCudaLoaded: libraryLoaded('libonnxruntime_providers_cuda.so', processMaps()),
  });
  for (const warning of record.warnings) logger.warn(warning);
  return record;
}
