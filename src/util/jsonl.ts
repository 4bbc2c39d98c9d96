import type * as z from 'zod';
import { DataError } from '../errors.ts';
import { parseInput } from '../schema/parse.ts';

/** Serialises rows as JSON Lines (one object a line, trailing newline). */
export function toJsonl(rows: readonly unknown[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
}

/**
 * Parses JSON Lines, each row checked against `schema`. A bad line is a DataError naming its
 * source (the object key), the line number and what is wrong, followed by `remedy`: what the user
 * does next (usually, rerun the state that wrote it).
 */
export function parseJsonl<S extends z.ZodType>(
  text: string,
  source: string,
  schema: S,
  remedy?: string,
): z.output<S>[] {
  const bad = (what: string, line: number) =>
    new DataError(`${source} line ${line}: ${what}${remedy ? `: ${remedy}` : ''}`);
  const out: z.output<S>[] = [];
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
    out.push(parseInput(schema, value, { name: 'row', bare: true }, (what) => bad(what, i + 1)));
  }
  return out;
}
