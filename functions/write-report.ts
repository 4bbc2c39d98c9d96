import { parseWriteReportEvent } from '../src/events.ts';
import { writeReport } from '../src/stages/write-report.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';
import { ratio } from './lib/telemetry.ts';

export const handler = stepHandler(
  'WriteReport',
  parseWriteReportEvent,
  (event) => writeReport(storeFromEnv(), event),
  (r) => [ratio('RunAccuracy', r.accuracy), ratio('RunMacroF1', r.macroF1)],
);
