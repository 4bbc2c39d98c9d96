import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../src/errors.ts';
import { IMAGENET_PREPROCESS } from '../src/model/types.ts';
import { checkBackboneInput, trainModel } from '../src/training/train-model.ts';
import { TRAINING_DEFAULTS } from '../src/training/training-config.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// TrainModel's refusals that need no training: they must say what to fix, before any work.

describe('TrainModel bad input', () => {
  let t: TestS3;
  beforeAll(async () => {
    t = await startTestS3();
  });
  afterAll(() => t.close());

  it('an empty shard list fails, saying Preprocess must run first, and writes nothing', async () => {
    await t.store.putJson('runs/r1/manifests/classes.json', {
      datasetId: 'd',
      sha256: 's',
      classes: ['a', 'b'],
    });
    await expect(
      trainModel(t.store, { runId: 'r1', training: TRAINING_DEFAULTS, progress: () => undefined }),
    ).rejects.toThrow(
      new DataError('no train shards under runs/r1/shards/: run Preprocess for this run first'),
    );
    expect(await t.keys('runs/r1/model/')).toEqual([]);
  });

  it('a backbone input the preprocessing cannot feed is refused with its shape', () => {
    const cut = { inputName: 'input', inputShape: [-1, 3, 64, 64], featureTensor: 'f', featureDim: 27 };
    expect(() => checkBackboneInput(cut, IMAGENET_PREPROCESS, 'tiny.onnx')).toThrow(
      /backbone tiny\.onnx takes input \[-1,3,64,64\], but the preprocessing gives NCHW 3×224×224: set the backbone's preprocessing/,
    );
    expect(() =>
      checkBackboneInput({ ...cut, inputShape: [-1, 3, 224, 224] }, IMAGENET_PREPROCESS, 'm'),
    ).not.toThrow();
    // dynamic spatial dims take any size
    expect(() =>
      checkBackboneInput({ ...cut, inputShape: [-1, 3, -1, -1] }, IMAGENET_PREPROCESS, 'm'),
    ).not.toThrow();
    expect(() =>
      checkBackboneInput({ ...cut, inputShape: [-1, 224, 224, 3] }, IMAGENET_PREPROCESS, 'nhwc'),
    ).toThrow(/takes input/);
  });
});
