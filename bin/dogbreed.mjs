#!/usr/bin/env node
// Runs the CLI from an esbuild bundle of src/, built on the first start and again whenever a
// source, the lockfile or esbuild changed (bin/fresh-bundle.mjs), so `npm ci` needs no build
// step. No source maps by default (parsing the map adds ~0.25 s to every start): for stack
// traces in the sources, run it as `node --enable-source-maps bin/dogbreed.mjs …`.
import { pathToFileURL } from 'node:url';
import { CLI_BUNDLE, ensureBundle } from './fresh-bundle.mjs';

// The SDK warns on every start that its 2027 releases need Node 22; Node 20 is supported here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
let bundle;
try {
  bundle = await ensureBundle(CLI_BUNDLE);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(bundle).href);
const code = await main(process.argv.slice(2));
// After Ctrl-C, work the stopped execution had in flight must not keep the process alive.
if (code === 130) process.exit(code);
process.exitCode = code;
