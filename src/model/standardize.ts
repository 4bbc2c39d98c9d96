import type { HeadWeights } from './types.ts';

// Features are standardised (zero mean, unit variance per dimension, from the training set)
// before the head is trained: one learning rate then suits any backbone, whatever the scale of
// its features. The transform is folded into the head's first layer afterwards, so the
// exported model takes raw backbone features and no extra op is needed.

export interface Standardizer {
  mean: Float32Array;
  std: Float32Array;
}

/** Per-dimension mean and standard deviation of row-major [rows × dim] features. */
export function fitStandardizer(features: Float32Array, dim: number): Standardizer {
  const rows = features.length / dim;
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    for (let d = 0; d < dim; d++) {
      const v = features[r * dim + d]!;
      mean[d]! += v;
      sq[d]! += v * v;
    }
  }
  const std = new Float32Array(dim);
  for (let d = 0; d < dim; d++) {
    mean[d]! /= rows;
    const variance = Math.max(0, sq[d]! / rows - mean[d]! ** 2);
    // A constant feature carries nothing; a unit scale keeps it finite.
    std[d] = variance > 1e-12 ? Math.sqrt(variance) : 1;
  }
  return { mean: Float32Array.from(mean), std };
}

/** Standardises features in place. */
export function standardize(features: Float32Array, s: Standardizer): void {
  const dim = s.mean.length;
  for (let i = 0; i < features.length; i++) {
    const d = i % dim;
    features[i] = (features[i]! - s.mean[d]!) / s.std[d]!;
  }
}

/** A linear layer on raw features, rewritten to act on standardised ones (same logits). */
export function toStandardized(
  layer: { weights: Float32Array; bias: Float32Array },
  s: Standardizer,
): { weights: Float32Array; bias: Float32Array } {
  const dim = s.mean.length;
  const out = layer.bias.length;
  const weights = new Float32Array(layer.weights.length);
  const bias = Float64Array.from(layer.bias);
  for (let d = 0; d < dim; d++) {
    for (let c = 0; c < out; c++) {
      const w = layer.weights[d * out + c]!;
      weights[d * out + c] = w * s.std[d]!;
      bias[c]! += s.mean[d]! * w;
    }
  }
  return { weights, bias: Float32Array.from(bias) };
}

/** The head trained on standardised features, rewritten to take raw features (same logits). */
export function foldStandardizer(head: HeadWeights, s: Standardizer): HeadWeights {
  const [first, ...rest] = head.layers;
  if (!first) return head;
  const { inDim: dim, outDim: out } = first;
  const weights = new Float32Array(first.weights.length);
  const bias = Float64Array.from(first.bias);
  for (let d = 0; d < dim; d++) {
    for (let c = 0; c < out; c++) {
      const w = first.weights[d * out + c]! / s.std[d]!;
      weights[d * out + c] = w;
      bias[c]! -= s.mean[d]! * w;
    }
  }
  return { ...head, layers: [{ ...first, weights, bias: Float32Array.from(bias) }, ...rest] };
}
