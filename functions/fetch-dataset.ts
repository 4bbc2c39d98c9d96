import { parseRunEvent } from '../src/events.ts';
import { fetchDataset } from '../src/stages/fetch-dataset.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';

export const handler = stepHandler('FetchDataset', parseRunEvent, ({ config }) =>
  fetchDataset(storeFromEnv(), { source: config.source, expectedSha256: config.expectedSha256 }),
);
