import { describe, expect, it } from 'vitest';
import {
  allocate,
  planShards,
  SHARD_LIST_BUDGET_BYTES,
  type SplitRatios,
  shardRows,
  stratifiedSplit,
} from '../src/dataset/split.ts';
import { DataError, InputError } from '../src/errors.ts';
import { type IndexRow, type ManifestRow, SPLITS, type Split } from '../src/types.ts';
import { hashString, mulberry32, shuffle } from '../src/util/prng.ts';

// ---- a tiny seeded generator of inventories ---------------------------------------------------

function row(cls: string, id: string, i: number): IndexRow {
  return {
    id,
    class: cls,
    member: `Images/${cls}/${id}.jpg`,
    offset: 512 * (i + 1),
    size: 1000 + i,
    width: 200 + (i % 50),
    height: 150 + (i % 70),
    format: 'jpeg',
  };
}

function classRows(cls: string, n: number): IndexRow[] {
  return Array.from({ length: n }, (_, j) => row(cls, `${cls}_${1000 + j * 7}`, j));
}

interface Inventory {
  rows: IndexRow[];
  sizes: Map<string, number>;
  /** Ratios in whole percent, so the tests can do exact integer arithmetic. */
  percent: [number, number, number];
  ratios: SplitRatios;
  seed: number;
}

function randomInventory(rand: () => number): Inventory {
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const classCount = int(2, 30);
  const sizes = new Map<string, number>();
  while (sizes.size < classCount) {
    // Mixed case so code-unit order differs from locale order ('Z…' sorts before 'a…').
    const breed = `${rand() < 0.3 ? 'Z' : 'b'}reed${int(0, 999)}`;
    sizes.set(`n0${int(2_000_000, 2_999_999)}-${breed}`, int(3, 60));
  }
  const rows = [...sizes].flatMap(([cls, n]) => classRows(cls, n));
  const train = int(5, 90);
  const val = int(5, 95 - train);
  const percent: [number, number, number] = [train, val, 100 - train - val];
  return {
    rows: shuffle(rows, rand),
    sizes,
    percent,
    ratios: [percent[0] / 100, percent[1] / 100, percent[2] / 100],
    seed: int(0, 0xffffffff),
  };
}

const inventories = (() => {
  const rand = mulberry32(20240611);
  return Array.from({ length: 200 }, () => randomInventory(rand));
})();

/** id → split, the assignment a run made. */
function assignment(splits: Record<Split, ManifestRow[]>): Map<string, Split> {
  return new Map(SPLITS.flatMap((s) => splits[s].map((r) => [r.id, s] as const)));
}

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Reference allocation in exact integer arithmetic on whole percents (no floats): largest
 * remainder, ties to the earlier split; then an empty split takes one from the largest count,
 * ties to the larger surplus count − quota, then to the earlier split.
 */
function referenceAllocate(n: number, percent: readonly number[]): number[] {
  const counts = percent.map((p) => Math.floor((n * p) / 100));
  const rem = percent.map((p) => (n * p) % 100);
  const order = [0, 1, 2].sort((a, b) => rem[b]! - rem[a]! || a - b);
  let left = n - counts.reduce((a, b) => a + b, 0);
  for (const i of order) if (left-- > 0) counts[i]!++;
  for (let empty = 0; empty < 3; empty++) {
    if (counts[empty]! > 0) continue;
    // surplus × 100 = 100·count − n·percent, still integers
    const surplus = (i: number) => 100 * counts[i]! - n * percent[i]!;
    const donor = [0, 1, 2].reduce((b, i) =>
      counts[i]! > counts[b]! || (counts[i] === counts[b] && surplus(i) > surplus(b)) ? i : b,
    );
    counts[donor]!--;
    counts[empty] = 1;
  }
  return counts;
}

// ---- allocate ----------------------------------------------------------------------------------

describe('allocate', () => {
  const r = [0.7, 0.15, 0.15] as SplitRatios;

  it('gives the largest-remainder counts computed by hand', () => {
    // 2.1/0.45/0.45 → floors 2,0,0; the leftover goes to val (0.45 ties test, val is earlier) → 2,1,0;
    // test is empty and takes one from train → 1,1,1
    expect(allocate(3, r)).toEqual([1, 1, 1]);
    // 2.8/0.6/0.6 → 2,0,0 + leftovers to train (.8) and val (.6 ties test) → 3,1,0 → test takes from train
    expect(allocate(4, r)).toEqual([2, 1, 1]);
    // 3.5/0.75/0.75 → 3,0,0 + leftovers to val and test (.75 > .5)
    expect(allocate(5, r)).toEqual([3, 1, 1]);
    // 4.9/1.05/1.05 → 4,1,1 + leftover to train
    expect(allocate(7, r)).toEqual([5, 1, 1]);
    // 7/1.5/1.5 → 7,1,1 + leftover to val (tie with test, val is earlier)
    expect(allocate(10, r)).toEqual([7, 2, 1]);
    expect(allocate(20, r)).toEqual([14, 3, 3]);
    expect(allocate(100, r)).toEqual([70, 15, 15]);
    // 0.8/0.1/0.1, n=3: 2.4/.3/.3 → 3,0,0 → val takes from train → 2,1,0 → test takes from train
    expect(allocate(3, [0.8, 0.1, 0.1])).toEqual([1, 1, 1]);
    // thirds: every remainder ties, so leftovers go in split order
    expect(allocate(4, [1 / 3, 1 / 3, 1 / 3])).toEqual([2, 1, 1]);
    expect(allocate(5, [1 / 3, 1 / 3, 1 / 3])).toEqual([2, 2, 1]);
    expect(allocate(6, [0.5, 0.25, 0.25])).toEqual([3, 2, 1]);
  });

  it('takes from the largest split, the one furthest above its share when two are as large', () => {
    // 2/1.8/0.2 → 2,1,0 + leftover to val → 2,2,0; train and val hold 2, val is 0.2 above its
    // share and train 0, so test takes from val
    expect(allocate(4, [0.5, 0.45, 0.05])).toEqual([2, 1, 1]);
    // 0.15/0.15/2.7 → 0,0,2 + leftover to test → 0,0,3 → train and val both take from test
    expect(allocate(3, [0.05, 0.05, 0.9])).toEqual([1, 1, 1]);
  });

  it('scales ratios that miss 1 by up to 1e-6, so huge classes still sum to n', () => {
    // 2100000.81/449999.595/449999.595 → 2100000,449999,449999 + leftovers to train (.81) and val
    // (.595 ties test); unscaled quotas (2100002.7/450000/450000) would floor to n + 2
    expect(allocate(3_000_000, [0.7000009, 0.15, 0.15])).toEqual([2_100_001, 450_000, 449_999]);
  });

  it('refuses fewer than 3 images', () => {
    for (const n of [0, 1, 2]) expect(() => allocate(n, r)).toThrow(DataError);
  });

  it('matches exact integer largest remainder on a grid of ratios and sizes', () => {
    let cases = 0;
    for (let a = 5; a <= 90; a += 5) {
      for (let b = 5; a + b <= 95; b += 5) {
        const percent = [a, b, 100 - a - b];
        const ratios = percent.map((p) => p / 100) as SplitRatios;
        for (let n = 3; n <= 300; n++) {
          expect(allocate(n, ratios), `n=${n} ${percent}`).toEqual(referenceAllocate(n, percent));
          cases++;
        }
      }
    }
    expect(cases).toBe(171 * 298);
  });
});

// ---- ratios ------------------------------------------------------------------------------------

// ---- stratifiedSplit ----------------------------------------------------------------------------

describe('stratifiedSplit on 200 random inventories', () => {
  const results = inventories.map((inv) => ({
    inv,
    out: stratifiedSplit(inv.rows, { ratios: inv.ratios, seed: inv.seed }),
  }));

  it('covers a wide range', () => {
    const classCounts = inventories.map((i) => i.sizes.size);
    const sizes = inventories.flatMap((i) => [...i.sizes.values()]);
    expect(Math.min(...classCounts)).toBe(2);
    expect(Math.max(...classCounts)).toBe(30);
    expect(Math.min(...sizes)).toBe(3);
    expect(Math.max(...sizes)).toBe(60);
  });

  it('splits are disjoint and together exactly the input, with the index fields kept', () => {
    for (const { inv, out } of results) {
      const all = SPLITS.flatMap((s) => out.splits[s]);
      expect(all.length).toBe(inv.rows.length);
      expect(new Set(all.map((r) => r.id)).size).toBe(inv.rows.length);
      const input = new Map(inv.rows.map((r) => [r.id, r]));
      for (const s of SPLITS) {
        for (const m of out.splits[s]) {
          const { split, label, ...rest } = m;
          expect(split).toBe(s);
          expect(rest).toEqual(input.get(m.id));
        }
      }
    }
  });

  it('labels follow code-unit class order, and each split is sorted by (label, id)', () => {
    for (const { inv, out } of results) {
      expect(out.classes).toEqual([...inv.sizes.keys()].sort(byCodeUnits));
      for (const s of SPLITS) {
        const rows = out.splits[s];
        for (const m of rows) expect(out.classes[m.label]).toBe(m.class);
        const sorted = [...rows].sort((a, b) => a.label - b.label || byCodeUnits(a.id, b.id));
        expect(rows).toEqual(sorted);
      }
    }
  });

  // The bound proved in allocate's comment: |count − n·ratio| < 1 when every n·ratio >= 1 (no
  // split rounds to empty); otherwise < 2, and a split raised from empty holds exactly 1.
  it('puts every class in every split, each count within the proved bound of n·ratio', () => {
    let tight = 0;
    for (const { inv, out } of results) {
      for (const [label, cls] of out.classes.entries()) {
        const n = inv.sizes.get(cls)!;
        const counts = SPLITS.map((s) => out.splits[s].filter((r) => r.label === label).length);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(n);
        expect(counts).toEqual(referenceAllocate(n, inv.percent));
        const quotas = inv.ratios.map((r) => n * r);
        const bound = Math.min(...quotas) >= 1 ? 1 : 2;
        if (bound === 1) tight++;
        counts.forEach((c, i) => {
          expect(c).toBeGreaterThanOrEqual(1);
          expect(Math.abs(c - quotas[i]!)).toBeLessThan(bound);
        });
      }
    }
    expect(tight).toBeGreaterThan(500); // the tight bound is exercised, not just the loose one
  });

  it('is deterministic: same seed, any input order → identical bytes', () => {
    const rand = mulberry32(7);
    for (const { inv, out } of results) {
      const again = stratifiedSplit(shuffle([...inv.rows], rand), { ratios: inv.ratios, seed: inv.seed });
      expect(JSON.stringify(again)).toBe(JSON.stringify(out));
    }
  });

  it('leaves the other classes alone when a class is added', () => {
    for (const { inv, out } of results) {
      const extra = classRows('n09999999-Newcomer', 17);
      const grown = stratifiedSplit([...extra, ...inv.rows], { ratios: inv.ratios, seed: inv.seed });
      const before = assignment(out.splits);
      const after = assignment(grown.splits);
      for (const [id, split] of before) expect(after.get(id)).toBe(split);
      expect(after.size).toBe(before.size + 17);
    }
  });
});

describe('stratifiedSplit, exact cases', () => {
  const rows = [
    ...classRows('n02085620-Chihuahua', 30),
    ...classRows('n02085782-Japanese_spaniel', 25),
    ...classRows('n02085936-Maltese_dog', 12),
  ];

  it('shuffles each class with mulberry32(seed ^ hashString(class)) over the id-sorted images', () => {
    const seed = 42;
    const out = stratifiedSplit(rows, { ratios: [0.7, 0.15, 0.15], seed });
    for (const cls of out.classes) {
      const ids = rows
        .filter((r) => r.class === cls)
        .map((r) => r.id)
        .sort(byCodeUnits);
      shuffle(ids, mulberry32(seed ^ hashString(cls)));
      const [nTrain, nVal] = allocate(ids.length, [0.7, 0.15, 0.15]);
      const ofClass = (s: Split) => out.splits[s].filter((r) => r.class === cls).map((r) => r.id);
      expect(ofClass('train')).toEqual(ids.slice(0, nTrain).sort(byCodeUnits));
      expect(ofClass('val')).toEqual(ids.slice(nTrain, nTrain + nVal).sort(byCodeUnits));
      expect(ofClass('test')).toEqual(ids.slice(nTrain + nVal).sort(byCodeUnits));
    }
    expect(SPLITS.map((s) => out.splits[s].length)).toEqual([21 + 17 + 8, 5 + 4 + 2, 4 + 4 + 2]);
  });

  it('a different seed gives a different assignment', () => {
    const a = assignment(stratifiedSplit(rows, { ratios: [0.7, 0.15, 0.15], seed: 1 }).splits);
    const b = assignment(stratifiedSplit(rows, { ratios: [0.7, 0.15, 0.15], seed: 2 }).splits);
    const moved = [...a].filter(([id, s]) => b.get(id) !== s).length;
    expect(moved).toBeGreaterThan(10);
  });

  it('sorts classes by code units, not locale', () => {
    const out = stratifiedSplit(
      [...classRows('beagle', 3), ...classRows('Boxer', 3), ...classRows('Ärtzel', 3)],
      {
        ratios: [0.7, 0.15, 0.15],
        seed: 1,
      },
    );
    expect(out.classes).toEqual(['Boxer', 'beagle', 'Ärtzel']);
    expect(out.splits.train.map((r) => r.label)).toEqual([0, 1, 2]);
  });

  it('writes manifest fields in a fixed order whatever the index rows look like', () => {
    const reordered = rows.map((r) => {
      const { format, id, ...rest } = r;
      return { format, ...rest, id };
    });
    const a = stratifiedSplit(rows, { ratios: [0.7, 0.15, 0.15], seed: 3 });
    const b = stratifiedSplit(reordered, { ratios: [0.7, 0.15, 0.15], seed: 3 });
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(Object.keys(a.splits.val[0]!)).toEqual([
      'id',
      'class',
      'member',
      'offset',
      'size',
      'width',
      'height',
      'format',
      'split',
      'label',
    ]);
  });

  it('names every class with fewer than 3 images', () => {
    const bad = [...rows, ...classRows('n02086079-Pekinese', 2), ...classRows('n02086240-Shih-Tzu', 1)];
    const run = () => stratifiedSplit(bad, { ratios: [0.7, 0.15, 0.15], seed: 1 });
    expect(run).toThrow(DataError);
    expect(run).toThrow(
      'every class needs at least 3 images (one per split): "n02086079-Pekinese" has 2, ' +
        '"n02086240-Shih-Tzu" has 1; drop the class or add images',
    );
  });

  it('refuses duplicate ids and an empty index', () => {
    expect(() => stratifiedSplit([...rows, rows[3]!], { ratios: [0.7, 0.15, 0.15], seed: 1 })).toThrow(
      new DataError(`image id "${rows[3]!.id}" appears twice in the dataset index`),
    );
    expect(() => stratifiedSplit([], { ratios: [0.7, 0.15, 0.15], seed: 1 })).toThrow(DataError);
    expect(() => stratifiedSplit(rows, { ratios: [0.7, 0.15, 0.15], seed: 2 ** 32 - 1 })).not.toThrow();
  });
});

// ---- planShards ---------------------------------------------------------------------------------

function fakeSplits(train: number, val: number, test: number): Record<Split, ManifestRow[]> {
  const make = (split: Split, n: number) =>
    classRows(`c-${split}`, n).map((r): ManifestRow => ({ ...r, split, label: 0 }));
  return { train: make('train', train), val: make('val', val), test: make('test', test) };
}

describe('planShards', () => {
  it('chunks each split in manifest order, train then val then test, with per-split indexes', () => {
    const splits = fakeSplits(25, 5, 10);
    const plan = planShards(splits, { runId: 'run-7', shardSize: 10 });
    expect(plan).toEqual([
      {
        split: 'train',
        index: 0,
        listKey: 'runs/run-7/manifests/shards/train/shard-00000.jsonl',
        outputKey: 'runs/run-7/shards/train/shard-00000.tar',
        count: 10,
      },
      {
        split: 'train',
        index: 1,
        listKey: 'runs/run-7/manifests/shards/train/shard-00001.jsonl',
        outputKey: 'runs/run-7/shards/train/shard-00001.tar',
        count: 10,
      },
      {
        split: 'train',
        index: 2,
        listKey: 'runs/run-7/manifests/shards/train/shard-00002.jsonl',
        outputKey: 'runs/run-7/shards/train/shard-00002.tar',
        count: 5,
      },
      {
        split: 'val',
        index: 0,
        listKey: 'runs/run-7/manifests/shards/val/shard-00000.jsonl',
        outputKey: 'runs/run-7/shards/val/shard-00000.tar',
        count: 5,
      },
      {
        split: 'test',
        index: 0,
        listKey: 'runs/run-7/manifests/shards/test/shard-00000.jsonl',
        outputKey: 'runs/run-7/shards/test/shard-00000.tar',
        count: 10,
      },
    ]);
    for (const split of SPLITS) {
      const rows = plan.filter((t) => t.split === split).flatMap((t) => shardRows(splits, t, 10));
      expect(rows).toEqual(splits[split]);
    }
    expect(shardRows(splits, plan[2]!, 10).map((r) => r.id)).toEqual(splits.train.slice(20).map((r) => r.id));
  });

  it('has shard counts ceil(n / size) with a smaller last shard, for every size', () => {
    const splits = fakeSplits(97, 13, 20);
    for (let size = 1; size <= 100; size++) {
      const plan = planShards(splits, { runId: 'r', shardSize: size });
      for (const split of SPLITS) {
        const n = splits[split].length;
        const counts = plan.filter((t) => t.split === split).map((t) => t.count);
        expect(counts.length).toBe(Math.ceil(n / size));
        expect(counts.slice(0, -1).every((c) => c === size)).toBe(true);
        expect(counts.at(-1)).toBe(n - size * (counts.length - 1));
        expect(plan.filter((t) => t.split === split).map((t) => t.index)).toEqual(counts.map((_, i) => i));
      }
    }
  });

  it('refuses rows looked up with another shard size', () => {
    const splits = fakeSplits(25, 5, 10);
    const plan = planShards(splits, { runId: 'r', shardSize: 10 });
    expect(() => shardRows(splits, plan[2]!, 8)).toThrow(/not planned from these rows with shard size 8/);
    expect(() => shardRows(splits, plan[0]!, 20)).toThrow(/not planned/);
  });

  it('accepts --shard-size 1 and 100000', () => {
    expect(planShards(fakeSplits(3, 3, 3), { runId: 'r', shardSize: 1 })).toHaveLength(9);
    expect(planShards(fakeSplits(3, 3, 3), { runId: 'r', shardSize: 100_000 })).toHaveLength(3);
  });

  describe('keeps the shard list under the state payload budget', () => {
    const runId = '3f2b8c1e-6a4d-4e2f-9b7a-0c5d1e8f2a63'; // a UUID, as executions are named
    // The longest task a plan can hold, plus its comma in the JSON array.
    const longest = `{"split":"train","index":99999,"listKey":"runs/${runId}/manifests/shards/train/shard-99999.jsonl","outputKey":"runs/${runId}/shards/train/shard-99999.tar","count":100000},`;
    const cap = Math.floor(SHARD_LIST_BUDGET_BYTES / longest.length);

    it('knows the cap for a UUID run id', () => {
      expect(SHARD_LIST_BUDGET_BYTES).toBe(131_072);
      expect(cap).toBe(577);
    });

    it('accepts exactly the cap, and that list fits the budget', () => {
      const plan = planShards(fakeSplits(cap - 2, 1, 1), { runId, shardSize: 1 });
      expect(plan).toHaveLength(cap);
      expect(Buffer.byteLength(JSON.stringify(plan))).toBeLessThanOrEqual(SHARD_LIST_BUDGET_BYTES);
    });

    it('refuses one more, saying how many and the smallest --shard-size that fits', () => {
      const splits = fakeSplits(cap - 1, 1, 1);
      expect(() => planShards(splits, { runId, shardSize: 1 })).toThrow(
        new InputError(
          `config.shardSize (--shard-size) 1 makes ${cap + 1} shards, more than the ${cap} whose list ` +
            'fits the Step Functions state (256 KiB payload limit); use 2 or larger',
        ),
      );
    });

    it('suggests a size that is accepted while one less is refused', () => {
      const splits = fakeSplits(20_000, 4_000, 4_001);
      let message = '';
      try {
        planShards(splits, { runId, shardSize: 10 });
      } catch (err) {
        expect(err).toBeInstanceOf(InputError);
        message = (err as InputError).message;
      }
      expect(message).toMatch(/^config\.shardSize \(--shard-size\) 10 makes 2801 shards, more than the 577 /);
      const suggested = Number(/use (\d+) or larger$/.exec(message)?.[1]);
      // ceil(28001 / 577) = 49 gives 409 + 82 + 82 = 573 shards; 48 gives 417 + 84 + 84 = 585
      expect(suggested).toBe(49);
      expect(planShards(splits, { runId, shardSize: suggested })).toHaveLength(573);
      expect(() => planShards(splits, { runId, shardSize: suggested - 1 })).toThrow(/makes 585 shards/);
    });
  });
});
