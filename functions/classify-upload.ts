import middy from '@middy/core';
import type { S3Event } from 'aws-lambda';
import { errorMessage, TransientError } from '../src/errors.ts';
import { configureSharp } from '../src/imaging/preprocess-image.ts';
import { logger } from '../src/log.ts';
import {
  classifyUpload,
  predictionKeyFor,
  uploadLimitsFromEnv,
  uploadRecords,
} from '../src/stages/classify-upload.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { count, lambdaTelemetry, milliseconds, record } from './lib/telemetry.ts';

// S3 ObjectCreated notifications for uploads/ → predictions/<name>.json, record by record.
// Bad uploads get an error document and count as failed; only transient S3 trouble throws,
// after every other record is done, so Lambda's retry redoes little and repeats nothing wrong.
// Metrics: uploads classified and failed, and each classification's latency (the core's tookMs).

configureSharp({ cache: false });

export interface ClassifySummary {
  processed: number;
  succeeded: number;
  failed: number;
  ignored: number;
  /** The predictions/… keys written. */
  keys: string[];
}

export const handler = middy<S3Event, ClassifySummary>()
  .use(lambdaTelemetry({ metrics: true }))
  .handler(async (event) => {
    const { uploads, ignored } = uploadRecords(event);
    const limits = uploadLimitsFromEnv();
    const summary: ClassifySummary = { processed: 0, succeeded: 0, failed: 0, ignored, keys: [] };
    const latencies: number[] = [];
    let retry: TransientError | undefined;
    for (const upload of uploads) {
      summary.processed++;
      try {
        const doc = await classifyUpload(storeFromEnv().forBucket(upload.bucket), upload, limits);
        if ('error' in doc) summary.failed++;
        else {
          summary.succeeded++;
          latencies.push(doc.tookMs);
        }
        summary.keys.push(predictionKeyFor(upload.key));
      } catch (err) {
        summary.failed++;
        if (err instanceof TransientError) retry ??= err;
        logger.error(`${upload.key}: no prediction written: ${errorMessage(err)}`, { key: upload.key });
      }
    }
    record('ClassifyUpload', [
      count('UploadsClassified', summary.succeeded),
      count('UploadErrors', summary.failed),
      ...latencies.map((ms) => milliseconds('ClassificationLatency', ms)),
    ]);
    if (retry) throw retry;
    return summary;
  });
