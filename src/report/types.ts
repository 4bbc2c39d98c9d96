// What renderReportHtml takes besides metrics.json: the subset of training.json it draws, and the
// misclassified test images to show.

import type { MetricsReport } from '../metrics/types.ts';
import type { EpochLog } from '../model/train-head.ts';

/** One epoch of runs/<runId>/model/training.json. */
export type EpochRecord = EpochLog;

/** The part of training.json the report reads. */
export interface TrainingRecord {
  epochs: EpochRecord[];
  bestEpoch: number;
  backend: string;
  hyperparameters?: Record<string, unknown>;
}

/** A misclassified test image, already shrunk to a thumbnail. */
export interface ReportThumbnail {
  id: string;
  /** True class (its class folder name or breed). */
  actual: string;
  /** What the model took it for (class folder name or breed). */
  predicted: string;
  /** Probability the model gave `predicted`. */
  probability: number;
  jpegBase64: string;
}

export interface ReportHtmlInput {
  metrics: MetricsReport;
  training?: TrainingRecord;
  thumbnails?: ReportThumbnail[];
}
