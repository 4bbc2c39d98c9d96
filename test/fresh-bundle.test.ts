import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BundleSpec, ensureBundle, staleness } from '../bin/fresh-bundle.mjs';

const run = promisify(execFile);
const FRESH_BUNDLE = new URL('../bin/fresh-bundle.mjs', import.meta.url).href;

// The on-demand bundles the CLI and the local training job run (bin/fresh-bundle.mjs), on a
// two-file entry point in a scratch folder: built when missing, reused while nothing changed,
// built again when an input or the lockfile did, and whole for concurrent builders.

describe('fresh bundles', () => {
  let root: string;
  let spec: BundleSpec;
  const lines: string[] = [];
  const log = (line: string) => lines.push(line);
  const put = async (path: string, text: string) => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  };
  const outfile = () => join(root, spec.outfile);
  /** Runs the bundle as a program: it prints its dependency's value. */
  const runBundle = async () => (await run(process.execPath, [outfile()])).stdout.trim();
  const identity = async () => {
    const s = await stat(outfile());
    return { ino: s.ino, mtimeMs: s.mtimeMs };
  };

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'dogbreed-fresh-bundle-'));
    spec = {
      name: 'the fixture',
      root,
      entry: 'src/main.ts',
      outfile: '.build/fx/main.mjs',
      target: 'node20',
    };
    await put('package.json', '{ "type": "module" }\n');
    await put('package-lock.json', '{ "lockfileVersion": 3, "packages": {} }\n');
    await put('src/dep.ts', "export const value: string = 'one';\n");
    await put('src/main.ts', "import { value } from './dep.ts';\nconsole.log(value);\n");
    lines.length = 0;
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('builds a missing bundle, saying why, and reuses it while nothing changed', async () => {
    expect(staleness(spec)).toBe('no bundle yet');
    expect(await ensureBundle(spec, log)).toBe(outfile());
    expect(lines).toEqual(['building the fixture bundle (no bundle yet) …']);
    expect(await runBundle()).toBe('one');
    const built = await identity();

    expect(staleness(spec)).toBeUndefined();
    await ensureBundle(spec, log);
    expect(lines).toHaveLength(1);
    expect(await identity()).toEqual(built);
  });

  it('builds again when an input is touched or edited, or the lockfile changes', async () => {
    await ensureBundle(spec, log);
    let before = await identity();

    const later = new Date(Date.now() - 60_000);
    await utimes(join(root, 'src/dep.ts'), later, later);
    expect(staleness(spec)).toBe('src/dep.ts changed');
    await ensureBundle(spec, log);
    expect(await identity()).not.toEqual(before);
    expect(staleness(spec)).toBeUndefined();

    await put('src/dep.ts', "export const value: string = 'two';\n");
    await ensureBundle(spec, log);
    expect(await runBundle()).toBe('two');

    before = await identity();
    await put('package-lock.json', '{ "lockfileVersion": 3, "packages": { "": { "version": "2" } } }\n');
    expect(staleness(spec)).toBe('package-lock.json changed');
    await ensureBundle(spec, log);
    expect(await identity()).not.toEqual(before);
    expect(lines.map((l) => /\((.*)\)/.exec(l)?.[1])).toEqual([
      'no bundle yet',
      'src/dep.ts changed',
      'src/dep.ts changed',
      'package-lock.json changed',
    ]);
  });

  it('a new file is caught through the edited file that imports it', async () => {
    await ensureBundle(spec, log);
    await put('src/other.ts', "export const other: string = 'three';\n");
    await put('src/main.ts', "import { other } from './other.ts';\nconsole.log(other);\n");
    expect(staleness(spec)).toBe('src/main.ts changed');
    await ensureBundle(spec, log);
    expect(await runBundle()).toBe('three');
  });

  it('a bundle replaced by another build is not taken for the one recorded', async () => {
    await ensureBundle(spec, log);
    await put(spec.outfile, "console.log('not from these sources');\n");
    expect(staleness(spec)).toBe('the bundle file changed');
  });

  it('an esbuild error is thrown with its file and line, and leaves no bundle', async () => {
    await put('src/dep.ts', 'export const value: string = ;\n');
    const err = await ensureBundle(spec, log).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^esbuild could not build the fixture \(src\/main\.ts\):/);
    expect((err as Error).message).toContain('src/dep.ts:1:29');
    expect((err as Error).message).toContain('fix the source named above and start again');
    expect(staleness(spec)).toBe('no bundle yet');
  });

  it('three processes ensuring at once each run a whole bundle, and leave no temporary files', async () => {
    // A bundle of megabytes, like the real ones: one written in place can be read half-written.
    const padding = JSON.stringify('x'.repeat(4_000_000));
    await put('src/dep.ts', `export const value: string = 'one' + ${padding}.slice(0, 0);\n`);
    const script = [
      "import { pathToFileURL } from 'node:url';",
      `import { ensureBundle } from ${JSON.stringify(FRESH_BUNDLE)};`,
      `await import(pathToFileURL(await ensureBundle(${JSON.stringify(spec)}, () => {})).href);`,
    ].join('\n');
    const both = await Promise.all(
      [1, 2].map(() => run(process.execPath, ['--input-type=module', '-e', script])),
    );
    for (const r of both) expect(r.stdout.trim()).toBe('one');
    expect((await readdir(dirname(outfile()))).sort()).toEqual([
      'main.mjs',
      'main.mjs.inputs.json',
      'main.mjs.map',
    ]);
    expect(await runBundle()).toBe('one');
  });
});
