import * as z from 'zod';

// Everywhere `import * as z`, not `import { z }`: through the namespace import esbuild leaves
// zod's locales out of the Lambda bundles (176 KiB of zod in each instead of 734 KiB).

// Field schemas phrased for parse.ts: each error reads after the field's name
// ("config.seed must be an integer from 0 to 4294967295"), and parse.ts adds the value given.

export function integer(min: number, max: number) {
  const error = `must be an integer from ${min} to ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/** A finite number in [min, max]. */
export function number(min: number, max: number) {
  const error = `must be a number from ${min} to ${max}`;
  return z.number({ error }).min(min, { error }).max(max, { error });
}

/** A finite number in (min, max]; `why` says what the lower bound is for. */
export function numberAbove(min: number, max: number, why?: string) {
  const error = `must be a number above ${min} and at most ${max}${why ? ` (${why})` : ''}`;
  return z.number({ error }).gt(min, { error }).max(max, { error });
}

export function text() {
  const error = 'must be a non-empty string';
  return z.string({ error }).min(1, { error });
}

/** A non-empty string matching `format` (ids, keys, checksums). */
export function pattern(format: RegExp) {
  return text().regex(format, { error: 'has an unexpected format' });
}

export function flag() {
  return z.boolean({ error: 'must be true or false' });
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `must be one of ${values.join(', ')}` });
}

/** An object whose unknown fields are refused: a typo must not silently fall back to a default. */
export function record<Shape extends z.ZodRawShape>(shape: Shape) {
  const fields = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `has no field ${issue.keys.join(', ')}: its fields are ${fields}`
        : 'must be an object',
  });
}

/** An object that may carry more fields than these (state payloads grow as the run goes). */
export function object<Shape extends z.ZodRawShape>(shape: Shape) {
  return z.object(shape, { error: 'must be an object' });
}

export function list<T extends z.ZodType>(item: T) {
  return z.array(item, { error: 'must be an array' });
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/;

export const runId = () =>
  text().regex(RUN_ID, {
    error: 'must be 1 to 80 letters, digits, _ . or -, starting with a letter or digit',
  });
export const s3Key = () => pattern(/^[^\0]{1,1024}$/);
export const sha256 = () => text().regex(SHA256_HEX, { error: 'must be 64 hexadecimal digits (a SHA-256)' });
/** A count of images or items: 0 or more. */
export const count = () => integer(0, Number.MAX_SAFE_INTEGER);
/** Seconds a state took, as its handler reports them. */
export const seconds = () =>
  z.number({ error: 'must be a number of seconds' }).min(0, { error: 'must be a number of seconds' });
/** Seeds are unsigned 32-bit: mulberry32's state. */
export const seed = () => integer(0, 2 ** 32 - 1);
