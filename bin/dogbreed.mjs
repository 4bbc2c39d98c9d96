#!/usr/bin/env node
// Runs the TypeScript CLI straight from source (tsx), so `npm ci` needs no build step.
import { register } from 'tsx/esm/api';

// The SDK warns on every start that its 2027 releases need Node 22; Node 20 is supported here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
