import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';

// Bundles every Lambda entry point in functions/ into one ESM file each (what serverless-esbuild
// does at deploy time), and the training job's entry point for its container, so the artefacts
// that run on AWS are built and tested in CI too.

const root = fileURLToPath(new URL('..', import.meta.url));

/** Native modules ship in Lambda layers (layers/) and the container image, not in bundles. */
export const EXTERNAL = ['sharp', 'onnxruntime-node', '@tensorflow/*'];

export function functionEntries(): string[] {
  return readdirSync(`${root}/functions`)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${root}/functions/${f}`);
}

async function bundle(entryPoints: string[], outdir: string, target: string): Promise<Metafile> {
  const result = await build({
    entryPoints,
    outdir,
    bundle: true,
    platform: 'node',
    target,
    format: 'esm',
    outExtension: { '.js': '.mjs' },
    sourcemap: true,
    metafile: true,
    external: EXTERNAL,
    // Some bundled CommonJS dependencies call require(); give ESM output one.
    banner: {
      js: "import { createRequire as __bannerRequire } from 'node:module'; const require = __bannerRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return result.metafile;
}

/** Lambda's runtime (nodejs24.x in serverless.yml, whose esbuild target is the same). */
export function bundleFunctions(outdir = `${root}/.build/functions`): Promise<Metafile> {
  return bundle(functionEntries(), outdir, 'node24');
}

export function bundleTrainJob(outdir = `${root}/.build/batch-job`): Promise<Metafile> {
  // The container's Node (batch-job/Dockerfile) is not Lambda's: Node 20 syntax runs on either.
  return bundle([`${root}/batch-job/train.ts`], outdir, 'node20');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const meta of [await bundleFunctions(), await bundleTrainJob()]) {
    for (const [file, out] of Object.entries(meta.outputs)) {
      if (file.endsWith('.mjs')) console.log(`${file}  ${(out.bytes / 1024).toFixed(0)} KiB`);
    }
  }
}
