import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CLI_BUNDLE, ensureBundle, TRAIN_BUNDLE } from '../bin/fresh-bundle.mjs';
import { REPO_ROOT, SHARED_SAMPLE_DIR } from './paths.ts';
import { progress, round } from './util.ts';

// Step caching and resume on the real sample (4,800 Stanford Dogs photos, int8 MobileNetV2),
// each as a ratio to a full run measured in the same bench run, through the CLI as a user runs it:
// - a rerun with only --learning-rate changed (target ≤ 0.15 × the full run);
// - `dogbreed resume` after the run was SIGKILLed in TrainModel (target ≤ 0.5 × the full run).

const BACKBONE = resolve(REPO_ROOT, '../shared/models/mobilenetv2-12-int8/mobilenetv2-12-int8.onnx');

interface CliRun {
  seconds: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** `dogbreed <args>` as a child process; SIGKILLed as soon as its output matches `killWhen`. */
function dogbreed(args: string[], killWhen?: RegExp): Promise<CliRun> {
  const started = performance.now();
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/dogbreed.mjs'), ...args], { cwd: REPO_ROOT });
  let output = '';
  const onData = (d: Buffer) => {
    output += String(d);
    if (killWhen?.test(output) && !child.killed) child.kill('SIGKILL');
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('exit', (code, signal) =>
      done({ seconds: (performance.now() - started) / 1000, code, signal, output }),
    );
  });
}

/** The state table a run prints at its end: seconds per state, where the time went. */
function stateSeconds(r: CliRun): Record<string, number> {
  const rows = [...r.output.matchAll(/^(\w+)\s+([\d.]+)\s+(?:succeeded|failed)/gm)];
  return Object.fromEntries(rows.map((m) => [m[1]!, Number(m[2])]));
}

function succeeded(what: string, r: CliRun): void {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code ?? r.signal}:\n${r.output.slice(-2000)}`);
}

export async function benchStepCache(dir: string): Promise<Record<string, unknown>> {
  if (!existsSync(SHARED_SAMPLE_DIR) || !existsSync(BACKBONE)) {
    return { skipped: `needs ${SHARED_SAMPLE_DIR} and ${BACKBONE}` };
  }
  const run = (workspace: string, extra: string[] = []) => [
    'run',
    '--source',
    SHARED_SAMPLE_DIR,
    '--backbone',
    BACKBONE,
    '--shard-size',
    '400',
    '--workspace',
    join(dir, workspace),
    ...extra,
  ];
  // Built now if the sources changed, so no run below pays for a bundle build.
  for (const bundle of [CLI_BUNDLE, TRAIN_BUNDLE]) await ensureBundle(bundle, progress);
  progress('stepCache: full run (empty cache)');
  const full = await dogbreed(run('ws'));
  succeeded('the full run', full);
  progress(`stepCache: full run ${full.seconds.toFixed(1)} s; rerun with only --learning-rate changed`);
  const rerun = await dogbreed(run('ws', ['--learning-rate', '0.0002']));
  succeeded('the rerun', rerun);
  progress(
    `stepCache: rerun ${rerun.seconds.toFixed(1)} s; a run in a fresh workspace, killed in TrainModel`,
  );
  const killed = await dogbreed(run('ws-kill'), /epoch 1\/\d+ train loss/);
  if (killed.signal !== 'SIGKILL')
    throw new Error(`the run to kill ended on its own:\n${killed.output.slice(-2000)}`);
  const runId = /^run (\S+): /m.exec(killed.output)?.[1];
  if (!runId) throw new Error('the killed run printed no run id');
  const resumed = await dogbreed(['resume', runId, '--workspace', join(dir, 'ws-kill')]);
  succeeded('the resume', resumed);
  progress(`stepCache: resume ${resumed.seconds.toFixed(1)} s`);
  return {
    command: 'npm run bench -- --only stepCache',
    sample: SHARED_SAMPLE_DIR,
    fullRunSeconds: round(full.seconds, 1),
    stateSeconds: { full: stateSeconds(full), rerun: stateSeconds(rerun), resume: stateSeconds(resumed) },
    learningRateRerunSeconds: round(rerun.seconds, 1),
    learningRateRerunRatio: round(rerun.seconds / full.seconds),
    killedInTrainModelAfterSeconds: round(killed.seconds, 1),
    resumeSeconds: round(resumed.seconds, 1),
    resumeRatio: round(resumed.seconds / full.seconds),
    resumedFrom: /resumed from (\w+)/.exec(resumed.output)?.[1],
    targets: { learningRateRerunRatio: 0.15, resumeRatio: 0.5 },
  };
}
