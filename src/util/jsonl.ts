import { DataError } from '../errors.ts';

/** Serialises rows as JSON Lines (one object a line, trailing newline). */
export function toJsonl(rows: readonly unknown[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
}

/**
 * Parses JSON Lines. A bad line is a DataError naming its source (the object key) and line
 * number, followed by `remedy`: what the user does next (usually, rerun the state that wrote it).
 */
export function parseJsonl<T>(
  text: string,
  source: string,
  check?: (v: unknown) => v is T,
  remedy?: string,
): T[] {
  const bad = (what: string, line: number) =>
    new DataError(`${source} line ${line}: ${what}${remedy ? `: ${remedy}` : ''}`);
  const out: T[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw bad('not valid JSON', i + 1);
    }
    if (check && !check(value)) throw bad('unexpected row shape', i + 1);
    out.push(value as T);
  }
  return out;
}
