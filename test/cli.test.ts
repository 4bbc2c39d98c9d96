import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BUNDLE, staleness } from '../bin/fresh-bundle.mjs';
import type { RunSummary } from '../src/cli/summary.ts';
import { cli } from './helpers/cli.ts';

const run = promisify(execFile);

describe('dogbreed CLI', () => {
  let dir: string;
  let tar: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dogbreed-cli-'));
    tar = join(dir, 'sample.tar');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('<command> --help prints that command’s usage and exits 0', async () => {
    for (const command of ['run', 'sample-data', 'runs', 'report', 'compare', 'evaluate', 'classify']) {
      const r = await cli([command, '--help']);
      expect(r.code, command).toBe(0);
      expect(r.stdout.split('\n')[1], command).toMatch(new RegExp(`^  dogbreed ${command}\\b`));
      const others = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('  dogbreed ') && !l.startsWith(`  dogbreed ${command} `));
      expect(others, command).toEqual([]);
    }
    const r = await cli(['run', '-h']);
    expect(r.stdout).toContain('--backbone');
    const bad = await cli(['runs', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('run `dogbreed runs --help` for the options');
  });

  it('sample-data writes the tarball it reports', async () => {
    const r = await cli(['sample-data', '--out', tar, '--classes', '3', '--per-class', '6', '--seed', '5']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*sample\.tar: 18 images in 3 classes/);
    expect(existsSync(tar)).toBe(true);
  });

  it('run --json prints one JSON summary on stdout and exits 0', async () => {
    const r = await cli([
      'run',
      '--source',
      tar,
      '--workspace',
      join(dir, 'ws'),
      '--shard-size',
      '4',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as RunSummary;
    expect(summary.status).toBe('SUCCEEDED');
    expect(summary.runId).toMatch(/^\d{8}-\d{6}-[0-9a-f]{4}$/);
    expect(summary.outputs?.verify.images).toBe(18);
    expect(summary.outputs?.shards.images).toBe(18);
    expect(summary.timings.map((t) => t.state)).toEqual(
      expect.arrayContaining(['FetchDataset', 'VerifyDataset', 'BuildManifests', 'Preprocess']),
    );
    // progress went to stderr, state by state and shard by shard
    expect(r.stderr).toContain('▶ VerifyDataset');
    expect(r.stderr).toMatch(/\[\d+\/\d+\] train shard 0 \(4 images\) done/);
  });

  it('a failing run exits 1 and names the failing state, the cause and the failure report', async () => {
    const missing = join(dir, 'missing.tar');
    const r = await cli(['run', '--source', missing, '--workspace', join(dir, 'ws')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(`failed in FetchDataset: InputError: source ${missing} does not exist`),
    );
    expect(r.stdout).toMatch(/failure report: s3:\/\/dogbreed-local\/reports\/.+\/failure\.json/);
  });

  it('bad flags exit 2 with a message naming the flag', async () => {
    const split = await cli(['run', '--split', '0.5,0.5', '--workspace', join(dir, 'ws'), '--source', tar]);
    expect(split.code).toBe(2);
    expect(split.stderr).toContain('--split');
    const size = await cli(['run', '--shard-size', 'many', '--source', tar]);
    expect(size.code).toBe(2);
    expect(size.stderr).toContain('--shard-size must be an integer from 1 to 100000, got "many"');
    const sizes = await cli(['run', '--shard-size', '0', '--hidden', '9000', '--source', tar]);
    expect(sizes.stderr).toContain(
      '--shard-size must be an integer from 1 to 100000, got "0"; --hidden must be an integer from 0 to 8192, got "9000"',
    );
    const sample = await cli(['sample-data', '--out', join(dir, 'x.tar'), '--classes', '1']);
    expect(sample.code).toBe(2);
    expect(sample.stderr).toContain('--classes must be an integer from 2 to 120, got "1"');
    const unknown = await cli(['run', '--colour', 'red']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--colour'");
    expect((await cli(['train-everything'])).code).toBe(2);
  });

  it('a bad --split is refused by its flag before the sample dataset is generated', async () => {
    const ws = join(dir, 'ws-bad-split');
    const r = await cli(['run', '--split', '0.5,0.5,0.5', '--workspace', ws]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dogbreed run: --split must sum to 1 (train + val + test), got 1.5');
    expect(r.stderr).not.toContain('config.split');
    expect(existsSync(join(ws, 'samples'))).toBe(false);
  });

  it('Ctrl-C stops the execution and the local S3 server, and exits 130 promptly', async () => {
    const big = join(dir, 'big.tar');
    expect((await cli(['sample-data', '--out', big, '--classes', '10', '--per-class', '60'])).code).toBe(0);
    const child = spawn(process.execPath, [
      'bin/dogbreed.mjs',
      'run',
      '--source',
      big,
      '--workspace',
      join(dir, 'ws-int'),
      '--shard-size',
      '20',
    ]);
    let output = '';
    let killedAt = 0;
    child.stdout.on('data', (d) => {
      output += String(d);
      if (output.includes('▶ Preprocess') && child.exitCode === null && !child.killed) {
        killedAt = Date.now();
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(output).toContain('interrupted: stopping the execution and the local S3 server');
    expect(output).toMatch(/run \S+ was stopped/);
    expect(killedAt).toBeGreaterThan(0);
    expect(Date.now() - killedAt).toBeLessThan(5_000);
  });

  it('the installed bin runs a bundle of the sources, fresh after the run', async () => {
    const { stdout } = await run(process.execPath, ['bin/dogbreed.mjs', 'help']);
    expect(stdout).toContain('dogbreed run [--source <url|dir|tar>]');
    expect(staleness(CLI_BUNDLE)).toBeUndefined();
  });
});
