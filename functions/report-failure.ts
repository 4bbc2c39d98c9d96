import { parseFailureEvent } from '../src/events.ts';
import { reportFailure } from '../src/stages/report-failure.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';

export const handler = stepHandler('ReportFailure', parseFailureEvent, (event) =>
  reportFailure(storeFromEnv(), event),
);
