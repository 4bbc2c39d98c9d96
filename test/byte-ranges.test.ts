import { describe, expect, it } from 'vitest';
import { coalesceRanges } from '../src/dataset/byte-ranges.ts';

describe('coalesceRanges', () => {
  const opts = { maxGapBytes: 100, maxSpanBytes: 1000 };

  it('merges members separated by small gaps, whatever the input order, and keeps their indexes', () => {
    const members = [
      { offset: 600, size: 50 }, // 0
      { offset: 0, size: 100 }, // 1
      { offset: 150, size: 100 }, // 2: gap 50 after #1
      { offset: 400, size: 100 }, // 3: gap 150 after #2 → new group
    ];
    expect(coalesceRanges(members, opts)).toEqual([
      { start: 0, end: 249, members: [1, 2] },
      { start: 400, end: 649, members: [3, 0] },
    ]);
  });

  it('starts a new range when the span would exceed the limit', () => {
    const members = Array.from({ length: 5 }, (_, i) => ({ offset: i * 300, size: 300 }));
    const groups = coalesceRanges(members, opts);
    expect(groups.map((g) => [g.start, g.end])).toEqual([
      [0, 899],
      [900, 1499],
    ]);
  });

  it('covers every member exactly once with ranges that contain them', () => {
    const members = Array.from({ length: 200 }, (_, i) => ({
      offset: i * 512 + (i % 7) * 3000,
      size: 100 + (i % 13) * 50,
    }));
    const groups = coalesceRanges(members, { maxGapBytes: 2048, maxSpanBytes: 20_000 });
    const seen = groups.flatMap((g) => g.members).sort((a, b) => a - b);
    expect(seen).toEqual(members.map((_, i) => i));
    for (const g of groups) {
      expect(g.end - g.start + 1).toBeLessThanOrEqual(20_000);
      for (const i of g.members) {
        expect(members[i]!.offset).toBeGreaterThanOrEqual(g.start);
        expect(members[i]!.offset + members[i]!.size - 1).toBeLessThanOrEqual(g.end);
      }
    }
  });

  it('keeps a member larger than the span limit as a range of its own', () => {
    expect(
      coalesceRanges(
        [
          { offset: 10, size: 5000 },
          { offset: 5010, size: 10 },
        ],
        opts,
      ),
    ).toEqual([
      { start: 10, end: 5009, members: [0] },
      { start: 5010, end: 5019, members: [1] },
    ]);
  });
});
