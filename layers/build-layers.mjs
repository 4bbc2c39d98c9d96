#!/usr/bin/env node
// Builds the Lambda layers that carry the native modules the bundled functions keep external:
//
//   layers/sharp/nodejs/node_modules        sharp + @img/sharp-linux-x64 + @img/sharp-libvips-linux-x64
//   layers/onnxruntime/nodejs/node_modules  onnxruntime-node (bin/napi-v6/linux/x64 only) + onnxruntime-common
//
// for linux-x64 (glibc) only, the architecture serverless.yml deploys. Nothing is downloaded: the
// packages are copied from the repository's node_modules (npm ci on a linux-x64 machine installs
// exactly these platform packages). Only runtime files are copied: no other platforms' binaries,
// C++ sources, TypeScript sources, type declarations, source maps or install scripts.
//
//   node layers/build-layers.mjs [sharp] [onnxruntime] [--json]
//
// Prints each layer's unzipped size; exits 1 when a layer exceeds Lambda's limit or a package is
// missing (with the command that installs it).

import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const nodeModules = join(root, 'node_modules');

/** Lambda: function code + all its layers, unzipped. */
export const LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024;

/** Paths (relative to a package) never needed at run time. */
const DROP = [
  /\.map$/,
  /\.d\.[cm]?ts$/,
  /(^|\/)README(\.md)?$/i,
  /(^|\/)CHANGELOG(\.md)?$/i,
  /(^|\/)\.[^/]+$/, // dotfiles
];

/**
 * What each layer holds. `deps: false` stops the walk into a package's dependencies (install-time
 * ones: onnxruntime-node's adm-zip and global-agent only serve its CUDA download script).
 */
export const LAYERS = {
  sharp: {
    description: 'sharp (libvips) for linux-x64 glibc',
    packages: [
      { name: 'sharp', drop: [/^src\//, /^install\//, /^lib\//] },
      { name: '@img/sharp-linux-x64' },
      { name: '@img/sharp-libvips-linux-x64', drop: [/^lib\/glib-2\.0\/include\//, /^include\//] },
    ],
  },
  onnxruntime: {
    description: 'onnxruntime-node CPU build for linux-x64',
    packages: [
      {
        name: 'onnxruntime-node',
        deps: ['onnxruntime-common'],
        // Keep only bin/napi-v6/linux/x64; lib/ and script/ are TypeScript sources and the installer.
        drop: [
          /^bin\/napi-v6\/(?!linux\/)[^/]/,
          /^bin\/napi-v6\/linux\/(?!x64\/)[^/]/,
          /^lib\//,
          /^script\//,
        ],
      },
      { name: 'onnxruntime-common', drop: [/^lib\//] },
    ],
  },
};

function packageDir(name) {
  return join(nodeModules, ...name.split('/'));
}

function readPackageJson(dir) {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
}

function dirSize(dir) {
  let bytes = 0;
  let files = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const sub = dirSize(path);
      bytes += sub.bytes;
      files += sub.files;
    } else if (entry.isFile()) {
      bytes += statSync(path).size;
      files++;
    }
  }
  return { bytes, files };
}

function missing(name, layer) {
  const version = (() => {
    try {
      return readPackageJson(join(root, 'package.json')).dependencies?.[
        layer === 'sharp' ? 'sharp' : 'onnxruntime-node'
      ];
    } catch {
      return undefined;
    }
  })();
  const pkg = layer === 'sharp' ? `sharp@${version ?? 'latest'}` : `onnxruntime-node@${version ?? 'latest'}`;
  return new Error(
    `${name} is not in ${relative(process.cwd(), nodeModules) || 'node_modules'}: run \`npm ci\` first. ` +
      `On a machine that is not linux-x64, add the Lambda platform's packages with ` +
      `\`npm install --no-save --os=linux --cpu=x64 --libc=glibc ${pkg}\`.`,
  );
}

/** Copies one package (its runtime files) and, unless told otherwise, its dependencies. */
function copyPackage(spec, target, layer, seen) {
  if (seen.has(spec.name)) return;
  seen.add(spec.name);
  const from = packageDir(spec.name);
  if (!existsSync(join(from, 'package.json'))) throw missing(spec.name, layer);
  const drop = [...DROP, ...(spec.drop ?? [])];
  const to = join(target, ...spec.name.split('/'));
  cpSync(from, to, {
    recursive: true,
    dereference: true,
    filter: (src) => {
      const rel = relative(from, src).split(sep).join('/');
      if (rel === '' || rel === 'package.json') return true;
      if (rel === 'node_modules' || rel.startsWith('node_modules/')) return false;
      // Directories pass (their files are filtered) unless a rule names the directory itself.
      const probe = statSync(src).isDirectory() ? `${rel}/` : rel;
      return !drop.some((re) => re.test(probe));
    },
  });
  // Regular dependencies only: the platform packages are optionalDependencies, listed in LAYERS.
  const deps = spec.deps ?? Object.keys(readPackageJson(from).dependencies ?? {});
  for (const dep of deps) {
    const declared = LAYERS[layer].packages.find((p) => p.name === dep);
    copyPackage(declared ?? { name: dep }, target, layer, seen);
  }
}

export function buildLayer(name, outRoot = here) {
  const layer = LAYERS[name];
  if (!layer) throw new Error(`unknown layer "${name}" (known: ${Object.keys(LAYERS).join(', ')})`);
  const base = join(outRoot, name);
  const target = join(base, 'nodejs', 'node_modules');
  rmSync(join(base, 'nodejs'), { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  const seen = new Set();
  for (const spec of layer.packages) copyPackage(spec, target, name, seen);
  const { bytes, files } = dirSize(join(base, 'nodejs'));
  return { name, path: relative(root, base), packages: [...seen].sort(), bytes, files };
}

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const names = args.filter((a) => !a.startsWith('--'));
  try {
    const results = (names.length ? names : Object.keys(LAYERS)).map((n) => buildLayer(n));
    const total = results.reduce((sum, r) => sum + r.bytes, 0);
    if (json) {
      console.log(JSON.stringify({ layers: results, totalBytes: total, limitBytes: LAMBDA_UNZIPPED_LIMIT }));
    } else {
      for (const r of results) {
        console.log(`${r.path}/nodejs  ${mb(r.bytes)} unzipped, ${r.files} files: ${r.packages.join(', ')}`);
      }
      console.log(
        `all layers together  ${mb(total)} unzipped (Lambda: function + layers ≤ ${mb(LAMBDA_UNZIPPED_LIMIT)})`,
      );
    }
    if (total > LAMBDA_UNZIPPED_LIMIT) {
      console.error(`the layers alone exceed Lambda's ${mb(LAMBDA_UNZIPPED_LIMIT)} unzipped limit`);
      process.exitCode = 1;
    }
  } catch (err) {
    console.error(`layer build failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
