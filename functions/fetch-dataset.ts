import { PROFILES } from '../src/dataset/profiles.ts';
import { DEPLOYED_SOURCES, LOCAL_SOURCES } from '../src/dataset/source-policy.ts';
import { parseRunEvent } from '../src/events.ts';
import { fetchDataset } from '../src/stages/fetch-dataset.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { onLambda } from './lib/on-lambda.ts';
import { stepHandler } from './lib/step-handler.ts';

// On Lambda the function's own files and its network neighbours are off limits: only public
// http(s) hosts and s3:// objects are fetched.

export const handler = stepHandler('FetchDataset', parseRunEvent, ({ config }) =>
  fetchDataset(storeFromEnv(), {
    source: config.source,
    expectedSha256: config.expectedSha256,
    expectedBytes: PROFILES[config.profile].tarballBytes,
    policy: onLambda() ? DEPLOYED_SOURCES : LOCAL_SOURCES,
  }),
);
