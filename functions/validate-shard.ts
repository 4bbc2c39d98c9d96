import { parseValidateEvent } from '../src/events.ts';
import { configureSharp } from '../src/imaging/preprocess-image.ts';
import { validateShard } from '../src/stages/validate-shard.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';
import { count } from './lib/telemetry.ts';

configureSharp({ cache: false });

export const handler = stepHandler(
  'ValidateShard',
  parseValidateEvent,
  (event) => validateShard(storeFromEnv(), event),
  (r) => [count('ImagesProcessed', r.images)],
);
