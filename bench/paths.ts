import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Where things are, relative to this file (the benchmarks may be started from any folder).

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(BENCH_DIR, '..');
export const TSNODE = resolve(REPO_ROOT, 'bin/tsnode.mjs');
/** Real Stanford Dogs photos beside the project (read only; may be absent). */
export const SHARED_SAMPLE_DIR = resolve(REPO_ROOT, '../shared/data/stanford-dogs-sample');
/** Debian's python, where `apt-get install python3-pil` puts Pillow. */
export const SYSTEM_PYTHON = '/usr/bin/python3';
