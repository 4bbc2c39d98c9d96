// esbuild bundles of the repository's TypeScript entry points (the CLI, the training job), built
// on demand and rebuilt whenever they could be stale, so `npm ci` needs no build step and a
// start skips tsx's per-module resolution and compiles (README.md, Development, has the figures).
//
// Fresh means: the same esbuild version and options, the same package-lock.json content (npm
// installs files with fixed old mtimes, so only the lockfile shows a dependency change), the
// same size and mtime for every input of the previous build (its metafile), and the bundle the
// one that build wrote. A new source file is caught because the file importing it changed.
//
// Plain JavaScript: bin/dogbreed.mjs runs this before any TypeScript can be loaded.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Native modules ship in Lambda layers (layers/) and the container image, not in bundles. */
export const EXTERNAL = ['sharp', 'onnxruntime-node', '@tensorflow/*'];

// Both bundles sit two folders below the root, as src/local/*.ts does, so the
// `new URL('../../…', import.meta.url)` lookups there name the same repository files in either.
export const CLI_BUNDLE = {
  name: 'the CLI',
  root: ROOT,
  entry: 'src/cli/main.ts',
  outfile: '.build/cli/main.mjs',
  target: 'node20',
};
/** What the container runs (batch-job/Dockerfile copies it), and the local TrainModel too. */
export const TRAIN_BUNDLE = {
  name: 'the training job',
  root: ROOT,
  entry: 'batch-job/train.ts',
  outfile: '.build/batch-job/train.mjs',
  // The container's Node (batch-job/Dockerfile) is not Lambda's: Node 20 syntax runs on either.
  target: 'node20',
};

/** Files esbuild reads that its metafile does not list. */
const CONFIG_FILES = ['package.json', 'tsconfig.json'];
/** File times come from a clock that may lag Date.now() by a scheduler tick (<= 10 ms). */
const CLOCK_SLACK_MS = 20;

/** The esbuild options every bundle of this repository is built with. */
export function bundleOptions({ root, entryPoints, target, outfile, outdir }) {
  return {
    absWorkingDir: root,
    entryPoints,
    ...(outfile ? { outfile } : { outdir, outExtension: { '.js': '.mjs' } }),
    bundle: true,
    platform: 'node',
    target,
    format: 'esm',
    sourcemap: true,
    // This module stays outside (src/local/train-model-task.ts imports it): its ROOT is taken
    // from its own place, and esbuild's JS API cannot be bundled.
    external: [...EXTERNAL, '*/bin/fresh-bundle.mjs'],
    // Some bundled CommonJS dependencies call require(); give ESM output one.
    banner: {
      js: "import { createRequire as __bannerRequire } from 'node:module'; const require = __bannerRequire(import.meta.url);",
    },
    logLevel: 'silent',
  };
}

const specOptions = (spec) =>
  bundleOptions({ root: spec.root, entryPoints: [spec.entry], target: spec.target, outfile: spec.outfile });
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const toStderr = (line) => process.stderr.write(`${line}\n`);
const fingerprintPath = (spec) => join(spec.root, `${spec.outfile}.inputs.json`);

/** The esbuild that buildBundle imports, without loading it. */
function esbuildVersion() {
  return JSON.parse(readFileSync(createRequire(import.meta.url).resolve('esbuild/package.json'), 'utf8'))
    .version;
}

function lockfileHash(root) {
  try {
    return sha256(readFileSync(join(root, 'package-lock.json')));
  } catch {
    return 'none';
  }
}

/** [size, mtimeMs], or null for a file that is gone. */
function fileStamp(path) {
  const s = statSync(path, { throwIfNoEntry: false });
  return s ? [s.size, s.mtimeMs] : null;
}

/** The bundle file itself: a new inode on every rename, so another build's output is told apart. */
function outputStamp(path) {
  const s = statSync(path, { throwIfNoEntry: false });
  return s ? [s.ino, s.size, s.mtimeMs] : null;
}

/** Why `spec`'s bundle must be (re)built, or undefined when the one on disk is fresh. */
export function staleness(spec) {
  let fp;
  try {
    fp = JSON.parse(readFileSync(fingerprintPath(spec), 'utf8'));
  } catch {
    return 'no bundle yet';
  }
  if (fp.esbuild !== esbuildVersion() || fp.options !== sha256(JSON.stringify(specOptions(spec))))
    return 'esbuild or its options changed';
  if (JSON.stringify(fp.output) !== JSON.stringify(outputStamp(join(spec.root, spec.outfile))))
    return 'the bundle file changed';
  // Concatenated, not join()ed: for ~1,300 inputs join() costs as much as the stats.
  const base = spec.root.endsWith(sep) ? spec.root : spec.root + sep;
  for (const [path, was] of Object.entries(fp.inputs)) {
    const now = fileStamp(base + path);
    // null: absent (tsconfig.json may be), which it must still be.
    if (was === null ? now !== null : now?.[0] !== was[0] || now[1] !== was[1]) return `${path} changed`;
  }
  if (fp.lockfile !== lockfileHash(spec.root)) return 'package-lock.json changed';
  return undefined;
}

/** Other processes see either the old file or the whole new one, never a part. Returns the
 * new file's stamp, taken before the rename so that it is this write's, not a concurrent one's. */
function writeWhole(path, data) {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(temp, data);
  const stamp = outputStamp(temp);
  renameSync(temp, path);
  return stamp;
}

/** Builds `spec`'s bundle and records what it was built from; returns esbuild's metafile. */
export async function buildBundle(spec, log = toStderr) {
  const esbuild = await import('esbuild');
  const options = specOptions(spec);
  for (let attempt = 1; ; attempt++) {
    const started = Date.now();
    // Read before the build: one changed while it runs is then recorded in its old form.
    const lockfile = lockfileHash(spec.root);
    let result;
    try {
      result = await esbuild.build({ ...options, write: false, metafile: true });
    } catch (err) {
      if (!Array.isArray(err?.errors)) throw err;
      const text = await esbuild.formatMessages(err.errors, { kind: 'error' });
      throw new Error(
        `esbuild could not build ${spec.name} (${spec.entry}):\n${text.join('')}fix the source named above and start again (the bundle is rebuilt then)`,
      );
    }
    for (const w of await esbuild.formatMessages(result.warnings, { kind: 'warning' })) log(w.trimEnd());
    const inputs = Object.fromEntries(
      [...Object.keys(result.metafile.inputs), ...CONFIG_FILES].map((p) => [
        p,
        fileStamp(join(spec.root, p)),
      ]),
    );
    // An input written while esbuild ran may be in the bundle in its old form yet recorded
    // with its new time: build again once it has settled (a file still changing after three
    // tries gets no record, so the next start builds again).
    const newest = Math.max(...Object.values(inputs).map((s) => s?.[1] ?? 0));
    const settled = newest < started - CLOCK_SLACK_MS;
    if (!settled && attempt < 3) {
      await new Promise((r) => setTimeout(r, newest + CLOCK_SLACK_MS - Date.now() + 1));
      continue;
    }
    const outfile = join(spec.root, spec.outfile);
    // The map first: a bundle is never newer than its map. A concurrent build may replace the
    // bundle after this; the stamp recorded is this one's, so the next check then rebuilds.
    for (const f of result.outputFiles.filter((f) => f.path !== outfile)) writeWhole(f.path, f.contents);
    const output = writeWhole(outfile, result.outputFiles.find((f) => f.path === outfile).contents);
    if (settled) {
      const fingerprint = { esbuild: esbuild.version, options: sha256(JSON.stringify(options)), lockfile };
      writeWhole(fingerprintPath(spec), JSON.stringify({ ...fingerprint, output, inputs }));
    }
    return result.metafile;
  }
}

/** The absolute path of `spec`'s bundle, built first (saying why on `log`) when not fresh. */
export async function ensureBundle(spec, log = toStderr) {
  const reason = staleness(spec);
  if (reason) {
    log(`building ${spec.name} bundle (${reason}) …`);
    await buildBundle(spec, log);
  }
  return join(spec.root, spec.outfile);
}
