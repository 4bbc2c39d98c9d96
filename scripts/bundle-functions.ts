import { readdirSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { buildBundle, bundleOptions, TRAIN_BUNDLE } from '../bin/fresh-bundle.mjs';

// Bundles every Lambda entry point in functions/ into one ESM file each (what serverless-esbuild
// does at deploy time), and the training job's entry point for its container, so the artefacts
// that run on AWS are built and tested in CI too. Both take the options of bin/fresh-bundle.mjs,
// which also builds the CLI's and the local training job's bundles on demand.

const root = fileURLToPath(new URL('..', import.meta.url));

export function functionEntries(): string[] {
  return readdirSync(`${root}/functions`)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${root}/functions/${f}`);
}

/** Lambda's runtime (nodejs24.x in serverless.yml, whose esbuild target is the same). */
export async function bundleFunctions(outdir = `${root}/.build/functions`): Promise<Metafile> {
  const options = bundleOptions({ root, entryPoints: functionEntries(), outdir, target: 'node24' });
  return (await build({ ...options, metafile: true, logLevel: 'warning' })).metafile;
}

/** The container's bundle (.build/batch-job/train.mjs, which the local TrainModel runs too). */
export function bundleTrainJob(outdir = `${root}/.build/batch-job`): Promise<Metafile> {
  return buildBundle({ ...TRAIN_BUNDLE, outfile: relative(root, `${outdir}/train.mjs`) });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const meta of [await bundleFunctions(), await bundleTrainJob()]) {
    for (const [file, out] of Object.entries(meta.outputs)) {
      if (file.endsWith('.mjs')) console.log(`${file}  ${(out.bytes / 1024).toFixed(0)} KiB`);
    }
  }
}
