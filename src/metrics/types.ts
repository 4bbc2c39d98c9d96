import type { GateThresholds } from './gate.ts';

// The shapes of validation: per-image predictions (written by Validate) and the run's report
// (reports/<runId>/metrics.json, written by WriteReport). metrics.json is read by people,
// `dogbreed report/compare/runs` and report.html; its schemaVersion changes when it does.

/** One test image's prediction, in runs/<runId>/predictions/shard-NNNNN.json. */
export interface Prediction {
  id: string;
  /** Index of the true class (labels.json order). */
  label: number;
  /** The five most probable classes, most probable first. */
  top5: { label: number; probability: number }[];
  /** Probability the model gave the true class (for log loss). */
  trueProbability: number;
}

export interface PredictionShard {
  schemaVersion: 1;
  runId: string;
  shardKey: string;
  modelSha256: string;
  predictions: Prediction[];
}

/** Precision, recall and F1 of one class, or an average of them. */
export interface PRF {
  precision: number;
  recall: number;
  f1: number;
}

export interface ClassMetrics extends PRF {
  index: number;
  class: string;
  breed: string;
  /** True images of this class in the test split. */
  support: number;
  /** Images predicted as this class. */
  predicted: number;
}

export interface ConfusedPair {
  /** True class. */
  actual: string;
  /** What it was taken for. */
  predicted: string;
  count: number;
  /** Share of the true class's images that went to `predicted`. */
  rate: number;
}

/** The quality gate's thresholds, described by GateSchema. */
export type { GateThresholds };

export interface GateResult {
  passed: boolean;
  thresholds: GateThresholds;
  /** One line per threshold, failed or passed, e.g. "accuracy 0.81 ≥ 0.60". */
  reasons: string[];
}

export interface Promotion {
  promoted: boolean;
  /** The champion before this run (run id), if any. */
  previousChampion?: string;
  reason: string;
}

export interface BackboneCard {
  source: string;
  sha256: string;
  featureDim: number;
  valAccuracy: number;
  zeroShotValAccuracy?: number;
  init: string;
  initReason?: string;
}

export interface MetricsReport {
  schemaVersion: 1;
  runId: string;
  createdAt: string;
  dataset: { datasetId: string; sha256: string };
  model: {
    runId: string;
    key: string;
    sha256: string;
    backbone: string;
    bestEpoch: number;
    valAccuracy: number;
    /** Which head was chosen on val (single, concatenated, averaged, zero-shot); older runs lack it. */
    head?: string;
    /** The backbones' own ImageNet classifiers for these classes on val, when they have one. */
    zeroShotValAccuracy?: number;
    /** Every backbone: its file's sha256, feature width, and its own head's val accuracy. */
    backbones?: BackboneCard[];
  };
  counts: { train: number; val: number; test: number; classes: number };
  accuracy: number;
  top5Accuracy: number;
  logLoss: number;
  micro: PRF;
  macro: PRF;
  weighted: PRF;
  perClass: ClassMetrics[];
  /** confusion[actual][predicted], in labels.json order. */
  confusion: number[][];
  mostConfused: ConfusedPair[];
  gate: GateResult;
  promotion: Promotion;
  /** Seconds per state of the execution, as far as known when the report is written. */
  timings: Record<string, number>;
  /** Per state and per shard: what this run computed and what it reused from the step cache. */
  cache?: Record<string, CacheUse>;
  /** Set when the run was resumed after a failure or an interruption: when, and from which state. */
  resumed?: { at: string; fromState: string; how: 'local' | 'redrive' }[];
}

export interface CacheUse {
  computed: number;
  reused: number;
  shards: { key: string; cached: boolean; seconds?: number }[];
}
