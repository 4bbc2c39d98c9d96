import { handler as buildManifests } from '../../functions/build-manifests.ts';
import { handler as fetchDataset } from '../../functions/fetch-dataset.ts';
import { handler as preprocessShard } from '../../functions/preprocess-shard.ts';
import { handler as reportFailure } from '../../functions/report-failure.ts';
import { handler as verifyDataset } from '../../functions/verify-dataset.ts';
import type { LocalHandler } from './step-functions.ts';

/** Task state name → the Lambda handler that serves it (the same modules AWS runs). */
export const localHandlers: Record<string, LocalHandler> = {
  FetchDataset: fetchDataset,
  VerifyDataset: verifyDataset,
  BuildManifests: buildManifests,
  PreprocessShard: preprocessShard,
  ReportFailure: reportFailure,
};
