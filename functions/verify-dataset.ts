import { parseVerifyEvent } from '../src/events.ts';
import { verifyDataset } from '../src/stages/verify-dataset.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';
import { count } from './lib/telemetry.ts';

export const handler = stepHandler(
  'VerifyDataset',
  parseVerifyEvent,
  (event) => verifyDataset(storeFromEnv(), event),
  // A reused inventory read no image: counting its images again would double them on a graph.
  (r) =>
    r.reused
      ? [count('StepCacheHits', 1)]
      : [count('ImagesProcessed', r.images + r.invalid), count('ImagesRejected', r.invalid)],
);
