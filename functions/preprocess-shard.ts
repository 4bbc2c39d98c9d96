import { parsePreprocessEvent } from '../src/events.ts';
import { configureSharp } from '../src/imaging/preprocess-image.ts';
import { preprocessShard } from '../src/stages/preprocess-shard.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';
import { count } from './lib/telemetry.ts';

// Each image is seen once: libvips' operation cache would only hold memory.
configureSharp({ cache: false });

export const handler = stepHandler(
  'PreprocessShard',
  parsePreprocessEvent,
  (event) => preprocessShard(storeFromEnv(), event),
  // A shard copied from the step cache decoded no image.
  (r) => (r.cached ? [count('StepCacheHits', 1)] : [count('ImagesProcessed', r.images)]),
);
