#!/usr/bin/env node
// Runs the TypeScript CLI straight from source (tsx), so `npm ci` needs no build step.
import { register } from 'tsx/esm/api';

// The SDK warns on every start that its 2027 releases need Node 22; Node 20 is supported here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
// After Ctrl-C, work the stopped execution had in flight must not keep the process alive.
if (code === 130) process.exit(code);
process.exitCode = code;
