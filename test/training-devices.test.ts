import { afterEach, describe, expect, it } from 'vitest';
import { setLogSink } from '../src/log.ts';
import { loadTf } from '../src/model/tf-backend.ts';
import {
  type DeviceObservation,
  deviceRecord,
  gpuDeviceNodes,
  libraryLoaded,
  recordDevices,
  tfUsesGpu,
} from '../src/training/devices.ts';

// The device record in training.json and its CPU-beside-a-GPU warnings, from injected
// observations (no GPU here), and once from this very process.

const onGpu: DeviceObservation = {
  gpuDevices: ['/dev/nvidia0'],
  tf: { backend: 'tensorflow', package: '@tensorflow/tfjs-node-gpu', gpu: true },
  onnxProvider: 'cuda',
  onnxCudaLoaded: true,
};

describe('device record', () => {
  it('counts only GPU device nodes as a GPU, not the control and UVM nodes', () => {
    expect(
      gpuDeviceNodes(['null', 'nvidiactl', 'nvidia-uvm', 'nvidia1', 'nvidia0', 'nvidia-modeset']),
    ).toEqual(['/dev/nvidia0', '/dev/nvidia1']);
    expect(gpuDeviceNodes(['null', 'nvidiactl'])).toEqual([]);
  });

  it('both libraries on the GPU: recorded, no warning', () => {
    const r = deviceRecord(onGpu);
    expect(r).toEqual({
      gpuPresent: true,
      gpuDevices: ['/dev/nvidia0'],
      tensorflow: { backend: 'tensorflow', package: '@tensorflow/tfjs-node-gpu', gpu: true },
      onnxruntime: { provider: 'cuda', gpu: true },
      warnings: [],
    });
  });

  it('TensorFlow on the CPU beside a GPU is warned about, naming the CUDA 11 libraries', () => {
    const r = deviceRecord({ ...onGpu, tf: { ...onGpu.tf, gpu: false } });
    expect(r.tensorflow.gpu).toBe(false);
    expect(r.onnxruntime.gpu).toBe(true);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /GPU is present \(\/dev\/nvidia0\) but TensorFlow\.js trained the head on the CPU/,
    );
    expect(r.warnings[0]).toContain('libcudart.so.11.0');
  });

  it('onnxruntime asked for CUDA but without its provider library loaded counts as the CPU', () => {
    const r = deviceRecord({ ...onGpu, onnxCudaLoaded: false });
    expect(r.onnxruntime).toEqual({ provider: 'cuda', gpu: false });
    expect(r.warnings).toEqual([
      expect.stringMatching(
        /onnxruntime computed the features on the CPU \(provider cuda, its CUDA library was not loaded\)/,
      ),
    ]);
  });

  it('no GPU on the instance: the CPU is expected, nothing to warn about', () => {
    const r = deviceRecord({
      gpuDevices: [],
      tf: { backend: 'wasm', package: '@tensorflow/tfjs + @tensorflow/tfjs-backend-wasm', gpu: false },
      onnxProvider: 'cpu',
      onnxCudaLoaded: false,
    });
    expect(r.gpuPresent).toBe(false);
    expect(r.warnings).toEqual([]);
  });

  it('reads a loaded library from /proc/self/maps lines by file name', () => {
    const maps = [
      '7f00-7f10 r-xp 00000000 08:01 42 /opt/x/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so',
      '7f10-7f20 r-xp 00000000 08:01 43 /usr/lib/x86_64-linux-gnu/libc.so.6',
    ].join('\n');
    expect(libraryLoaded('libonnxruntime_providers_cuda.so', maps)).toBe(true);
    expect(libraryLoaded('libonnxruntime_providers_cuda.so', maps.split('\n')[1]!)).toBe(false);
  });
});

describe('recordDevices in this process', () => {
  let restore: (() => void) | undefined;
  afterEach(() => restore?.());

  it('records the wasm backend and the CPU provider, and logs exactly the warnings it records', async () => {
    const warned: string[] = [];
    restore = setLogSink((level, message) => {
      if (level === 'warn') warned.push(message);
    });
    const loaded = await loadTf('wasm');
    expect(tfUsesGpu(loaded)).toBe(false);
    const r = recordDevices(loaded, 'cpu');
    expect(r.tensorflow).toEqual({ backend: 'wasm', package: loaded.package, gpu: false });
    expect(r.onnxruntime).toEqual({ provider: 'cpu', gpu: false });
    // On a machine with a GPU both libraries ran on the CPU here, and both are warned about.
    expect(r.warnings).toHaveLength(r.gpuPresent ? 2 : 0);
    expect(warned).toEqual(r.warnings);
  });
});
