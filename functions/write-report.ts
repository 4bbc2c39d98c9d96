import { parseWriteReportEvent } from '../src/events.ts';
import { writeReport } from '../src/stages/write-report.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';

export const handler = stepHandler('WriteReport', parseWriteReportEvent, (event) =>
  writeReport(storeFromEnv(), event),
);
