import { describe, expect, it } from 'vitest';
import { fitStandardizer, foldStandardizer, standardize, toStandardized } from '../src/model/standardize.ts';
import type { HeadWeights } from '../src/model/types.ts';
import { mulberry32 } from '../src/util/prng.ts';

const rand = mulberry32(5);
const dim = 6;
const rows = 50;
const features = Float32Array.from(
  { length: rows * dim },
  (_, i) => (i % dim) * 10 + rand() * (1 + (i % dim)),
);

function logits(x: Float32Array, w: Float32Array, b: Float32Array, out: number): number[][] {
  const res: number[][] = [];
  for (let r = 0; r < x.length / dim; r++) {
    res.push(
      Array.from(
        { length: out },
        (_, c) =>
          b[c]! +
          Array.from({ length: dim }, (_, d) => x[r * dim + d]! * w[d * out + c]!).reduce((a, v) => a + v, 0),
      ),
    );
  }
  return res;
}

describe('feature standardisation', () => {
  it('gives zero mean and unit variance per dimension, and keeps constant features finite', () => {
    const withConstant = Float32Array.from(features, (v, i) => (i % dim === 2 ? 7 : v));
    const s = fitStandardizer(withConstant, dim);
    expect(s.std[2]).toBe(1);
    const x = Float32Array.from(withConstant);
    standardize(x, s);
    for (let d = 0; d < dim; d++) {
      const col = Array.from({ length: rows }, (_, r) => x[r * dim + d]!);
      const m = col.reduce((a, v) => a + v, 0) / rows;
      expect(Math.abs(m)).toBeLessThan(1e-4);
      if (d !== 2) expect(Math.sqrt(col.reduce((a, v) => a + (v - m) ** 2, 0) / rows)).toBeCloseTo(1, 3);
    }
  });

  it('folding a head trained on standardised features gives the same logits on raw features', () => {
    const s = fitStandardizer(features, dim);
    const out = 3;
    const w = Float32Array.from({ length: dim * out }, () => rand() - 0.5);
    const b = Float32Array.from({ length: out }, () => rand());
    const head: HeadWeights = {
      inputDim: dim,
      classes: out,
      layers: [{ weights: w, bias: b, inDim: dim, outDim: out }],
    };
    const folded = foldStandardizer(head, s).layers[0]!;
    const x = Float32Array.from(features);
    standardize(x, s);
    const expected = logits(x, w, b, out);
    const actual = logits(features, folded.weights, folded.bias, out);
    for (const [i, v] of actual.flat().entries()) expect(v).toBeCloseTo(expected.flat()[i]!, 3);
  });

  it('toStandardized is the inverse of folding: an init keeps its logits', () => {
    const s = fitStandardizer(features, dim);
    const out = 2;
    const w = Float32Array.from({ length: dim * out }, () => rand() - 0.5);
    const b = Float32Array.from({ length: out }, () => rand());
    const std = toStandardized({ weights: w, bias: b }, s);
    const x = Float32Array.from(features);
    standardize(x, s);
    const expected = logits(features, w, b, out).flat();
    for (const [i, v] of logits(x, std.weights, std.bias, out).flat().entries()) {
      expect(v).toBeCloseTo(expected[i]!, 3);
    }
  });
});
