import type * as z from 'zod';
import { InputError, type PipelineError } from '../errors.ts';

// The one place a schema's refusal becomes an InputError. Every message names the field as the
// user gave it (a JSON path in an event, a flag on the CLI), says what is wrong and shows the
// value given, so the message alone is enough to fix the input.

type Path = readonly PropertyKey[];

/** How the fields of a parsed value are named in messages. */
export interface Naming {
  /** What the whole value is called (`event`, `config`, `DOGBREED_TRAINING`). */
  name: string;
  /**
   * Field paths start at the value's own fields: an execution input's split is `config.split`,
   * as the user wrote it, not `event.config.split`.
   */
  bare?: boolean;
  /** Another name for a field and the value as the user typed it (a CLI flag and its text). */
  field?: (path: Path) => { name: string; given: unknown } | undefined;
}

/** `a.b[0].c`: a path as it reads in JSON. */
export function jsonPath(path: Path): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/** A value as a message shows it: JSON, cut short. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v);
  return s && s.length > 60 ? `${s.slice(0, 57)}...` : String(s);
}

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const p of path)
    v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

function fieldName(path: Path, naming: Naming): string {
  if (path.length === 0) return naming.name;
  return naming.bare ? jsonPath(path) : jsonPath([naming.name, ...path]);
}

/**
 * One issue as a sentence. Schemas phrase their errors to follow the field's name ("must be an
 * integer from 1 to 10"); the value given is added, except to checks that say what they saw
 * themselves (custom checks, unknown fields).
 */
function sentence(issue: z.core.$ZodIssue, root: unknown, naming: Naming): string {
  const alias = naming.field?.(issue.path);
  const name = alias?.name ?? fieldName(issue.path, naming);
  if (issue.code === 'custom' || issue.code === 'unrecognized_keys') return `${name} ${issue.message}`;
  const given = alias ? alias.given : valueAt(root, issue.path);
  return `${name} ${issue.message}, got ${describe(given)}`;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

/** Wording for what a schema did not phrase itself (fields.ts phrases the common ones). */
function fallback(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')}`;
    case 'unrecognized_keys':
      return `has no field ${issue.keys.join(', ')}`;
    default:
      return undefined;
  }
}

/**
 * A value that no alternative of a union took: when one alternative took its type and failed
 * inside it (a list with a bad item), that one's issues say more than "must be one of these".
 */
function unwrap(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_union') return [issue];
  const inside = issue.errors.find((branch) => branch.every((i) => i.path.length > 0));
  if (!inside) return [issue];
  return inside.flatMap((i) => unwrap({ ...i, path: [...issue.path, ...i.path] } as z.core.$ZodIssue));
}

/**
 * `schema.parse`, refusals as one error listing every issue: an InputError (the user's input), or
 * what `refuse` makes of the message (a DataError for an object the pipeline wrote).
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  naming: Naming,
  refuse: (message: string) => PipelineError = (message) => new InputError(message),
): z.output<S> {
  const result = schema.safeParse(value, { error: fallback });
  if (result.success) return result.data;
  throw refuse(
    result.error.issues
      .flatMap(unwrap)
      .map((i) => sentence(i, value, naming))
      .join('; '),
  );
}
