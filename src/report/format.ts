// How figures read in the report: rates as percentages, scores to three decimals.

const DASH = '—';

/** 0.8125 → "81.3%". */
export function percent(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : DASH;
}

/** 0.80512 → "0.805". */
export function decimal(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toFixed(digits) : DASH;
}

/** 12000 → "12,000". */
export function count(n: number): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : DASH;
}

/** Enough of a sha256 to tell models apart at a glance. */
export function shortSha(sha: string): string {
  return sha.slice(0, 12);
}

/** 75.2 → "1 min 15 s"; 3.25 → "3.3 s". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return DASH;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}
