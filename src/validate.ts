import { InputError } from './errors.ts';

// Small checks for untrusted input at the edge (events, CLI flags). Each names the field
// and says what was expected, so the message is enough to fix the input.

type Obj = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s && s.length > 60 ? `${s.slice(0, 57)}...` : String(s);
}

export function object(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InputError(`${path} must be an object, got ${describe(v)}`);
  }
  return v as Obj;
}

export function string(v: unknown, path: string, pattern?: RegExp): string {
  if (typeof v !== 'string' || v.length === 0)
    throw new InputError(`${path} must be a non-empty string, got ${describe(v)}`);
  if (pattern && !pattern.test(v)) throw new InputError(`${path} has an unexpected format: ${describe(v)}`);
  return v;
}

export function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InputError(`${path} must be an integer from ${min} to ${max}, got ${describe(v)}`);
  }
  return v;
}

export function number(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new InputError(`${path} must be a number from ${min} to ${max}, got ${describe(v)}`);
  }
  return v;
}

export function array(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw new InputError(`${path} must be an array, got ${describe(v)}`);
  return v;
}

export function boolean(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new InputError(`${path} must be true or false, got ${describe(v)}`);
  return v;
}

export function oneOf<T extends string>(v: unknown, path: string, options: readonly T[]): T {
  if (typeof v !== 'string' || !options.includes(v as T)) {
    throw new InputError(`${path} must be one of ${options.join(', ')}, got ${describe(v)}`);
  }
  return v as T;
}

/** Applies `check` when the value is present, else returns undefined. */
export function optional<T>(v: unknown, check: (v: unknown) => T): T | undefined {
  return v === undefined || v === null ? undefined : check(v);
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/;
export const S3_KEY = /^[^\0]{1,1024}$/;
