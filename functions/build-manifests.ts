import { parseManifestsEvent } from '../src/events.ts';
import { buildManifests } from '../src/stages/build-manifests.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';

export const handler = stepHandler('BuildManifests', parseManifestsEvent, (event) =>
  buildManifests(storeFromEnv(), event),
);
