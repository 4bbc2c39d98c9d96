import type * as z from 'zod';
import { parseInput } from '../schema/parse.ts';

// Flags to schema input, and schema refusals back to flags: the one place the CLI maps an
// option's flag to the field it sets, so a refusal names `--split`, not `config.split`.

/** Where a flag's value goes in the schema's input, and how its text reads. */
export interface FlagSpec {
  path: readonly string[];
  read?: (text: string) => unknown;
}

/** A plain decimal as a number; anything else stays text, for the schema to refuse by name. */
export function decimal(text: string): unknown {
  return /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text.trim()) ? Number(text) : text;
}

/** `0.7,0.15,0.15` */
export function decimals(text: string): unknown[] {
  return text.split(',').map(decimal);
}

/**
 * Parses the flags given (`values` from parseArgs) with `schema`, each set at its spec's path.
 * A refusal names the flag and quotes the text typed; repeated flags are joined with commas.
 */
export function parseFlags<S extends z.ZodType>(
  schema: S,
  values: Record<string, unknown>,
  flags: Readonly<Record<string, FlagSpec>>,
  extra: Record<string, unknown> = {},
): z.output<S> {
  const input: Record<string, unknown> = { ...extra };
  const given = (flag: string) => {
    const v = values[flag];
    return Array.isArray(v) ? v.join(',') : v;
  };
  for (const [flag, spec] of Object.entries(flags)) {
    const v = given(flag);
    if (v === undefined) continue;
    let at = input;
    for (const key of spec.path.slice(0, -1)) {
      at[key] ??= {};
      at = at[key] as Record<string, unknown>;
    }
    at[spec.path.at(-1)!] = typeof v === 'string' && spec.read ? spec.read(v) : v;
  }
  const byFlag = Object.entries(flags);
  return parseInput(schema, input, {
    name: 'options',
    bare: true,
    field: (path) => {
      // The flag whose path is the longest prefix of the refused field's.
      const match = byFlag
        .filter(([, spec]) => spec.path.every((key, i) => path[i] === key))
        .sort(([, a], [, b]) => b.path.length - a.path.length)[0];
      return match && { name: `--${match[0]}`, given: given(match[0]) };
    },
  });
}
