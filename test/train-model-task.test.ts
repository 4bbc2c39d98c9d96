import { describe, expect, it } from 'vitest';
import { parseSubmitJob } from '../src/local/train-model-task.ts';

// TrainModel's submitJob parameters, as the local runner reads them.

describe('parseSubmitJob', () => {
  it('turns the container overrides into the job environment', () => {
    expect(
      parseSubmitJob({
        JobName: 'train-r1',
        JobQueue: 'q',
        JobDefinition: 'd',
        ContainerOverrides: {
          Environment: [
            { Name: 'DOGBREED_RUN_ID', Value: 'r1' },
            { Name: 'DOGBREED_TRAINING', Value: '{"epochs":3}' },
          ],
        },
      }),
    ).toEqual({ jobName: 'train-r1', env: { DOGBREED_RUN_ID: 'r1', DOGBREED_TRAINING: '{"epochs":3}' } });
  });

  it('refuses overrides over AWS Batch’s 8 KiB limit, as Batch would', () => {
    const big = { Name: 'DOGBREED_TRAINING', Value: 'x'.repeat(9000) };
    expect(() => parseSubmitJob({ JobName: 'j', ContainerOverrides: { Environment: [big] } })).toThrow(
      /ContainerOverrides is \d+ bytes, over AWS Batch's 8 KiB limit: pass S3 keys, not lists/,
    );
  });

  it('names a malformed override', () => {
    expect(() =>
      parseSubmitJob({ JobName: 'j', ContainerOverrides: { Environment: [{ Value: 'x' }] } }),
    ).toThrow('ContainerOverrides.Environment[0].Name must be a non-empty string, got nothing');
  });
});
