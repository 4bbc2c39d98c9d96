import { MAX_SHARD_INDEX, MAX_SHARD_SIZE, type SplitRatios } from '../config.ts';
import { DataError, InputError } from '../errors.ts';
import { keys } from '../storage/layout.ts';
import type { IndexRow, ManifestRow, ShardTask, Split } from '../types.ts';
import { SPLITS } from '../types.ts';
import { hashString, mulberry32, shuffle } from '../util/prng.ts';

export type { SplitRatios };

// BuildManifests core: a seeded, stratified train/val/test split and its grouping into shards.
// Pure functions: the same rows and seed give byte-identical manifests in any input order, so a
// retried or re-run BuildManifests never changes which images a model was trained or tested on.

export interface SplitResult {
  /** Class names in code-unit order; a class's position is its label (labels.json order). */
  classes: string[];
  /** Rows of each split sorted by (label, id). */
  splits: Record<Split, ManifestRow[]>;
}

/** Fractional parts closer than this are float noise and count as a tie. */
const EPS = 1e-9;

/**
 * Image counts [train, val, test] for one class of n images. Largest remainder: each split gets
 * floor(n·ratio), the leftover images go to the largest fractional parts (ties to the earlier split
 * in train, val, test order), so |count − n·ratio| < 1. Then a split left empty takes one image from
 * the largest split (ties to the one furthest above its share), so every class is in every split;
 * that happens only when some n·ratio < 1, and keeps |count − n·ratio| < 2 (the raised split holds
 * 1 with 0 < n·ratio < 1; the donor held > n·ratio − 1 and gives at most 2, only when it held all
 * n and so n·ratio > n − 2).
 * `ratios` must be valid (SplitSchema in config.ts).
 */
export function allocate(n: number, ratios: SplitRatios): SplitRatios {
  if (n < SPLITS.length) throw new DataError(`${n} images cannot be spread over train, val and test`);
  const total = ratios[0] + ratios[1] + ratios[2];
  const quotas = ratios.map((r) => (n * r) / total);
  const counts = quotas.map((q) => Math.floor(q));
  const frac = (i: number) => quotas[i]! - counts[i]!;
  const byRemainder = [0, 1, 2].sort((a, b) =>
    Math.abs(frac(b) - frac(a)) > EPS ? frac(b) - frac(a) : a - b,
  );
  const left = n - counts.reduce((a, b) => a + b, 0);
  // `left` is at most 2, or 3 when float noise puts all three quotas just below integers.
  for (let k = 0; k < left; k++) counts[byRemainder[k % 3]!]!++;

  for (let empty = 0; empty < 3; empty++) {
    if (counts[empty]! > 0) continue;
    // With n >= 3 and one split empty, the largest holds at least 2, so it stays non-empty.
    const donor = [0, 1, 2].reduce((best, i) => {
      const d = counts[i]! - counts[best]!;
      return d > 0 || (d === 0 && counts[i]! - quotas[i]! > counts[best]! - quotas[best]! + EPS) ? i : best;
    });
    counts[donor]!--;
    counts[empty] = 1;
  }
  return [counts[0]!, counts[1]!, counts[2]!];
}

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Stratified split: each class is split on its own by `allocate`, so every class is in every split
 * in proportion. A class's images are sorted by id, then shuffled with a generator seeded from the
 * run seed and the class name only, so adding or removing a class leaves the others' assignment as
 * it was. The first n_train go to train, the next n_val to val, the rest to test.
 */
export function stratifiedSplit(
  rows: readonly IndexRow[],
  opts: { ratios: SplitRatios; seed: number },
): SplitResult {
  const { ratios } = opts;
  if (rows.length === 0) throw new DataError('the dataset index has no images to split');

  const byClass = new Map<string, IndexRow[]>();
  const ids = new Set<string>();
  for (const row of rows) {
    // Ids order the images before the shuffle; a duplicate would make the order depend on input order.
    if (ids.has(row.id)) throw new DataError(`image id "${row.id}" appears twice in the dataset index`);
    ids.add(row.id);
    const list = byClass.get(row.class);
    if (list) list.push(row);
    else byClass.set(row.class, [row]);
  }
  // Code units, not localeCompare: labels must not depend on the machine's ICU data or locale.
  const classes = [...byClass.keys()].sort(byCodeUnits);
  const small = classes.filter((c) => byClass.get(c)!.length < SPLITS.length);
  if (small.length > 0) {
    const list = small.map((c) => `"${c}" has ${byClass.get(c)!.length}`).join(', ');
    throw new DataError(
      `every class needs at least 3 images (one per split): ${list}; drop the class or add images`,
    );
  }

  const splits: Record<Split, ManifestRow[]> = { train: [], val: [], test: [] };
  classes.forEach((cls, label) => {
    const images = byClass.get(cls)!.sort((a, b) => byCodeUnits(a.id, b.id));
    shuffle(images, mulberry32(opts.seed ^ hashString(cls)));
    const [nTrain, nVal] = allocate(images.length, ratios);
    images.forEach((r, i) => {
      const split: Split = i < nTrain ? 'train' : i < nTrain + nVal ? 'val' : 'test';
      // Fields listed one by one: the manifest bytes must not depend on the index rows' key order.
      splits[split].push({
        id: r.id,
        class: r.class,
        member: r.member,
        offset: r.offset,
        size: r.size,
        width: r.width,
        height: r.height,
        format: r.format,
        split,
        label,
      });
    });
  });
  for (const split of SPLITS) splits[split].sort((a, b) => a.label - b.label || byCodeUnits(a.id, b.id));
  return { classes, splits };
}

/**
 * The shard list travels in the state payload (Step Functions caps it at 256 KiB) and the Map's
 * results sit beside it afterwards, so the list may use half of it.
 */
export const SHARD_LIST_BUDGET_BYTES = 128 * 1024;

function shardTask(runId: string, split: Split, index: number, count: number): ShardTask {
  return {
    split,
    index,
    listKey: keys.shardList(runId, split, index),
    outputKey: keys.shard(runId, split, index),
    count,
  };
}

function shardCount(splits: Record<Split, readonly ManifestRow[]>, shardSize: number): number {
  return SPLITS.reduce((sum, s) => sum + Math.ceil(splits[s].length / shardSize), 0);
}

/**
 * Most shards whose list fits the budget for this run id: sized by the longest task a plan can
 * hold (longest split name, 5-digit index, 6-digit count), so it does not depend on --shard-size.
 */
function maxShards(runId: string): number {
  const longest =
    Buffer.byteLength(JSON.stringify(shardTask(runId, 'train', MAX_SHARD_INDEX, MAX_SHARD_SIZE))) + 1;
  return Math.floor(SHARD_LIST_BUDGET_BYTES / longest);
}

/**
 * The Preprocess fan-out: each split's rows in manifest order, in chunks of at most shardSize (the
 * last one smaller), split by split in train, val, test order; indexes start at 0 in each split.
 */
export function planShards(
  splits: Record<Split, readonly ManifestRow[]>,
  opts: { runId: string; shardSize: number },
): ShardTask[] {
  const { runId, shardSize } = opts;
  const limit = maxShards(runId);
  const count = shardCount(splits, shardSize);
  if (count > limit) {
    const rows = SPLITS.reduce((sum, s) => sum + splits[s].length, 0);
    let suggested = Math.ceil(rows / limit);
    while (shardCount(splits, suggested) > limit) suggested++;
    throw new InputError(
      `config.shardSize (--shard-size) ${shardSize} makes ${count} shards, more than the ${limit} whose ` +
        `list fits the Step Functions state (256 KiB payload limit); use ${suggested} or larger`,
    );
  }
  return SPLITS.flatMap((split) => {
    const n = splits[split].length;
    return Array.from({ length: Math.ceil(n / shardSize) }, (_, i) =>
      shardTask(runId, split, i, Math.min(shardSize, n - i * shardSize)),
    );
  });
}

/** The manifest rows of one planned shard (what goes into its list object); same shardSize as the plan. */
export function shardRows(
  splits: Record<Split, readonly ManifestRow[]>,
  shard: ShardTask,
  shardSize: number,
): ManifestRow[] {
  const start = shard.index * shardSize;
  const rows = splits[shard.split].slice(start, start + shard.count);
  if (
    rows.length !== shard.count ||
    (shard.count < shardSize && start + shard.count !== splits[shard.split].length)
  ) {
    throw new Error(
      `shard ${shard.split}/${shard.index} was not planned from these rows with shard size ${shardSize}`,
    );
  }
  return rows;
}
