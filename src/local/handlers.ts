import { handler as buildManifests } from '../../functions/build-manifests.ts';
import { handler as fetchDataset } from '../../functions/fetch-dataset.ts';
import { handler as preprocessShard } from '../../functions/preprocess-shard.ts';
import { handler as validateShard } from '../../functions/validate-shard.ts';
import { handler as verifyDataset } from '../../functions/verify-dataset.ts';
import { handler as writeReport } from '../../functions/write-report.ts';
import type { LocalHandler } from './step-functions.ts';
import { trainModelTask } from './train-model-task.ts';

/** Task state name → what serves it locally: the Lambda handlers AWS runs, and the Batch job as a child process. */
export const localHandlers: Record<string, LocalHandler> = {
  FetchDataset: fetchDataset,
  VerifyDataset: verifyDataset,
  BuildManifests: buildManifests,
  PreprocessShard: preprocessShard,
  TrainModel: trainModelTask,
  ValidateShard: validateShard,
  WriteReport: writeReport,
};
