import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';

// Bundles every Lambda entry point in functions/ into one ESM file each (what serverless-esbuild
// does at deploy time), so the artefact Lambda runs is built and tested in CI too.

const root = fileURLToPath(new URL('..', import.meta.url));

/** Native modules ship in Lambda layers (layers/), not in the bundle. */
export const EXTERNAL = ['sharp'];

export function functionEntries(): string[] {
  return readdirSync(`${root}/functions`)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${root}/functions/${f}`);
}

export async function bundleFunctions(outdir = `${root}/.build/functions`): Promise<Metafile> {
  const result = await build({
    entryPoints: functionEntries(),
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    outExtension: { '.js': '.mjs' },
    sourcemap: true,
    metafile: true,
    external: EXTERNAL,
    // Some bundled CommonJS dependencies call require(); give ESM output one.
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return result.metafile;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const meta = await bundleFunctions();
  for (const [file, out] of Object.entries(meta.outputs)) {
    if (file.endsWith('.mjs')) console.log(`${file}  ${(out.bytes / 1024).toFixed(0)} KiB`);
  }
}
