import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire, isBuiltin } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import util, { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreUtilForTfjsNode } from '../batch-job/node-compat.ts';
import {
  parseLdconfigCache,
  parseLddMissing,
  type SelfCheckReport,
  TF_CUDA_LIBRARIES,
} from '../batch-job/self-check.ts';
import { bundleTrainJob } from '../scripts/bundle-functions.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILD_DIR = join(ROOT, '.build');

interface PackageJson {
  dependencies: Record<string, string>;
}
interface PackageLock {
  packages: Record<string, { version?: string; dependencies?: Record<string, string> }>;
}

// What the training image is built from: batch-job/package.json + its lockfile (npm ci) and the
// bundled job, whose --self-check the Dockerfile runs. The image itself cannot be built here
// (no Docker engine); these check the parts that decide whether its build can work.

describe('training image: the bundled job and its packages', () => {
  let outdir: string;
  let externals: string[];

  beforeAll(async () => {
    // Inside the repository, so the externals resolve from node_modules as in the image.
    await mkdir(BUILD_DIR, { recursive: true });
    outdir = await mkdtemp(join(BUILD_DIR, 'test-train-job-'));
    const meta = await bundleTrainJob(outdir);
    externals = [
      ...new Set(
        Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path)),
      ),
    ].filter((p) => !isBuiltin(p));
  }, 120_000);
  afterAll(() => rm(outdir, { recursive: true, force: true }));

  it('every package the bundle leaves external is in batch-job/package.json at the version the project is tested with', async () => {
    const job = JSON.parse(await readFile(join(ROOT, 'batch-job/package.json'), 'utf8')) as PackageJson;
    const project = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
    expect(externals).toEqual(expect.arrayContaining(['sharp', 'onnxruntime-node', '@tensorflow/tfjs']));
    for (const spec of externals) {
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      expect(job.dependencies[pkg], `${pkg} in batch-job/package.json`).toBeDefined();
      if (project.dependencies[pkg]) expect(job.dependencies[pkg], pkg).toBe(project.dependencies[pkg]);
    }
    expect(job.dependencies['@tensorflow/tfjs-node-gpu']).toBe(job.dependencies['@tensorflow/tfjs']);
  });

  it('batch-job/package-lock.json matches batch-job/package.json, so the image’s npm ci installs exactly it', async () => {
    const job = JSON.parse(await readFile(join(ROOT, 'batch-job/package.json'), 'utf8')) as PackageJson;
    const lock = JSON.parse(await readFile(join(ROOT, 'batch-job/package-lock.json'), 'utf8')) as PackageLock;
    expect(lock.packages['']?.dependencies).toEqual(job.dependencies);
    for (const [name, version] of Object.entries(job.dependencies)) {
      expect(lock.packages[`node_modules/${name}`]?.version, name).toBe(version);
    }
    // The linux-x64 build of sharp's native part is locked too (it is an optional dependency).
    expect(lock.packages['node_modules/@img/sharp-linux-x64']?.version).toBe(job.dependencies.sharp);
  });

  it('`train.mjs --self-check` loads every native module, runs work through each and prints one JSON report', async () => {
    const { stdout } = await run(process.execPath, [join(outdir, 'train.mjs'), '--self-check']);
    const report = JSON.parse(stdout) as SelfCheckReport;
    expect(report.ok).toBe(true);
    expect(report.failures).toEqual([]);
    expect(report.node).toBe(process.version);
    expect(report.modules.sharp).toMatchObject({ installed: true, loaded: true, version: '0.35.5' });
    expect(report.modules['onnxruntime-node']).toMatchObject({
      installed: true,
      loaded: true,
      version: '1.30.0',
    });
    // tfjs-node-gpu cannot be installed here (its install downloads libtensorflow): the wasm backend runs.
    const tfjsNodeGpuInstalled = canResolve('@tensorflow/tfjs-node-gpu');
    expect(report.modules['@tensorflow/tfjs-node-gpu'].installed).toBe(tfjsNodeGpuInstalled);
    if (!tfjsNodeGpuInstalled) expect(report.tensorflow).toMatchObject({ backend: 'wasm', gpu: false });
    // CUDA is tried only where a GPU is present (and the provider installed).
    expect(['cpu', 'cuda']).toContain(report.onnxruntime.ranOn);
    if (report.gpuDevices.length === 0) expect(report.onnxruntime.ranOn).toBe('cpu');
    expect(report.onnxruntime.providers).toContainEqual({ name: 'cpu', available: true });
    expect(report.onnxruntime.providers.map((p) => p.name)).toContain('cuda');
  });

  it('`--require-gpu-stack` (the image build) fails here, naming each missing GPU piece', async () => {
    const err = (await run(process.execPath, [
      join(outdir, 'train.mjs'),
      '--self-check',
      '--require-gpu-stack',
    ]).catch((e: unknown) => e)) as { code?: number; stdout: string; stderr: string };
    expect(err.code).toBe(1);
    const report = JSON.parse(err.stdout) as SelfCheckReport;
    expect(report.ok).toBe(false);
    expect(err.stderr).toContain('self-check failed:');
    if (!canResolve('@tensorflow/tfjs-node-gpu'))
      expect(report.failures).toContain('@tensorflow/tfjs-node-gpu is not installed');
    expect(report.failures.join('\n')).toMatch(
      /onnxruntime-node's CUDA provider|onnxruntime's CUDA provider/,
    );
  });
});

describe('self-check helpers', () => {
  it('reads the libraries ldd cannot find, leaving out the driver’s own', () => {
    const ldd = [
      '\tlinux-vdso.so.1 (0x00007ffd)',
      '\tlibcublasLt.so.12 => /usr/local/cuda/lib64/libcublasLt.so.12 (0x00007f)',
      '\tlibcudnn.so.9 => not found',
      '\tlibcuda.so.1 => not found',
      '\tlibcufft.so.11 => not found',
    ].join('\n');
    expect(parseLddMissing(ldd)).toEqual(['libcudnn.so.9', 'libcufft.so.11']);
  });

  it('reads the sonames of the linker cache', () => {
    const cache = [
      "1234 libs found in cache `/etc/ld.so.cache'",
      '\tlibcudnn.so.8 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcudnn.so.8',
      '\tlibcudart.so.11.0 (libc6,x86-64) => /usr/local/cuda-11.8/targets/x86_64-linux/lib/libcudart.so.11.0',
    ].join('\n');
    const names = parseLdconfigCache(cache);
    expect([...names]).toEqual(['libcudnn.so.8', 'libcudart.so.11.0']);
    expect(TF_CUDA_LIBRARIES.filter((n) => !names.has(n))).not.toContain('libcudnn.so.8');
  });

  it('puts back util.isNullOrUndefined, which tfjs-node 4.22 calls and Node 23+ removed', () => {
    const legacy = util as unknown as Record<string, unknown>;
    const original = legacy.isNullOrUndefined;
    delete legacy.isNullOrUndefined; // as on Node 24
    try {
      restoreUtilForTfjsNode();
      // Looked up on the CommonJS module and called unbound, as tfjs-node's compiled code does.
      const { isNullOrUndefined } = createRequire(import.meta.url)('util') as {
        isNullOrUndefined: (v: unknown) => boolean;
      };
      expect([null, undefined, 0, ''].map((v) => isNullOrUndefined(v))).toEqual([true, true, false, false]);
    } finally {
      legacy.isNullOrUndefined = original;
    }
  });
});

function canResolve(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}
