import { describe, expect, it } from 'vitest';
import { topK } from '../src/model/top-k.ts';
import { mulberry32 } from '../src/util/prng.ts';

describe('topK', () => {
  it('returns the k largest of a row, largest first, ties to the lower index', () => {
    const m = Float32Array.from([0.1, 0.5, 0.2, 0.2, 0, /* row 1 */ 0.3, 0.3, 0.1, 0.2, 0.1]);
    expect(topK(m, 0, 5, 3)).toEqual([
      { label: 1, probability: 0.5 },
      { label: 2, probability: Math.fround(0.2) },
      { label: 3, probability: Math.fround(0.2) },
    ]);
    expect(topK(m, 1, 5, 2).map((t) => t.label)).toEqual([0, 1]);
    expect(topK(m, 1, 5, 9)).toHaveLength(5);
  });

  it('agrees with a full sort on random rows', () => {
    const rand = mulberry32(9);
    const width = 120;
    const m = Float32Array.from({ length: width * 20 }, () => rand());
    for (let r = 0; r < 20; r++) {
      const row = Array.from({ length: width }, (_, i) => ({ label: i, probability: m[r * width + i]! }));
      row.sort((a, b) => b.probability - a.probability || a.label - b.label);
      expect(topK(m, r, width, 5)).toEqual(row.slice(0, 5));
    }
  });
});
