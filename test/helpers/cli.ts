import { vi } from 'vitest';
import { main } from '../../src/cli/main.ts';

/** Runs the CLI in-process, capturing what it writes to stdout and stderr. */
export async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const capture = (sink: string[]) => (s: string | Uint8Array) => {
    sink.push(String(s));
    return true;
  };
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(capture(out));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation(capture(err));
  try {
    return { code: await main(args), stdout: out.join(''), stderr: err.join('') };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}
