import { executionHistory, type HistoryEvent, sfnClient } from '../src/aws/execution.ts';
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

// The SDK retries a throttled or failed history call (src/aws/sdk-retry.ts); what still fails
// fails the invocation, which Lambda retries as a whole (EventBridge invokes it asynchronously).
const sfn = sfnClient();
export const handler = reportFailureHandler((executionArn) => executionHistory(sfn, executionArn));
