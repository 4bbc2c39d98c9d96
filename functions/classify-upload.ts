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

// S3 ObjectCreated notifications for uploads/ → predictions/<name>.json, record by record.
// Bad uploads get an error document and count as failed; only transient S3 trouble throws,
// after every other record is done, so Lambda's retry redoes little and repeats nothing wrong.

configureSharp({ cache: false });

export interface ClassifySummary {
  processed: number;
  succeeded: number;
  failed: number;
  ignored: number;
  /** The predictions/… keys written. */
  keys: string[];
}

export const handler = middy<S3Event, ClassifySummary>().handler(async (event) => {
  const { uploads, ignored } = uploadRecords(event);
  const limits = uploadLimitsFromEnv();
  const summary: ClassifySummary = { processed: 0, succeeded: 0, failed: 0, ignored, keys: [] };
  let retry: TransientError | undefined;
  for (const upload of uploads) {
    summary.processed++;
    try {
      const doc = await classifyUpload(storeFromEnv().forBucket(upload.bucket), upload, limits);
      summary['error' in doc ? 'failed' : 'succeeded']++;
      summary.keys.push(predictionKeyFor(upload.key));
    } catch (err) {
      summary.failed++;
      if (err instanceof TransientError) retry ??= err;
      logger.error(`${upload.key}: no prediction written: ${errorMessage(err)}`, { key: upload.key });
    }
  }
  if (retry) throw retry;
  return summary;
});
