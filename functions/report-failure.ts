import { type HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { executionHistory } from '../src/aws/execution.ts';
import { parseExecutionStatusChange } from '../src/execution-status-event.ts';
import { reportFailure } from '../src/stages/report-failure.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { stepHandler } from './lib/step-handler.ts';

/** Where an execution's history comes from: GetExecutionHistory here, the engine's record locally. */
export type HistorySource = (executionArn: string) => AsyncIterable<HistoryEvent>;

export const reportFailureHandler = (history: HistorySource) =>
  stepHandler('ReportFailure', parseExecutionStatusChange, (event) =>
    reportFailure(storeFromEnv(), event, history(event.executionArn)),
  );

// Throttled history calls are retried by executionHistory; any other error fails the invocation,
// which Lambda retries (EventBridge invokes it asynchronously).
const sfn = new SFNClient({ maxAttempts: 1 });
export const handler = reportFailureHandler((executionArn) => executionHistory(sfn, executionArn));
