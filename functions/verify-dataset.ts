import { parseVerifyEvent } from '../src/events.ts';
import { verifyDataset } from '../src/stages/verify-dataset.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';

export const handler = stepHandler('VerifyDataset', parseVerifyEvent, (event) =>
  verifyDataset(storeFromEnv(), event),
);
