import { DataError } from '../errors.ts';
import type { ValidateEvent } from '../events.ts';
import { logger } from '../log.ts';
import type { Prediction, PredictionShard } from '../metrics/types.ts';
import { type OnnxBatchModel, RowTable, runBatched } from '../model/batch-model.ts';
import { evalView } from '../model/image-tensor.ts';
import { type LoadOptions, loadServingModel } from '../model/serving-model.ts';
import { topK } from '../model/top-k.ts';
import type { PreprocessSpec } from '../model/types.ts';
import { keys } from '../storage/layout.ts';
import { INTERMEDIATE, type ObjectStore } from '../storage/object-store.ts';
import { readShard } from '../training/shard-reader.ts';
import type { ValidationResult } from '../types.ts';

// Validate, one test shard: the run's model.onnx (loaded once per container) over the shard's
// images, preprocessed as the model's own metadata says, in batches; one predictions object.

/**
 * Images per onnxruntime call. 16 rather than 32: Validate took less wall and CPU time on 2
 * cores (A/B reruns), the decoding and the worker taking finer turns; the outputs are the same
 * to the bit at either size.
 */
export const VALIDATE_BATCH = 16;

/**
 * The session in a worker thread: run inline, each batch's session.run held up the main thread,
 * and with it sharp's completions and the next batch's decoding (here and in the other test
 * shard, which a local run validates in the same process). Measured on 2 cores: a few per cent
 * less wall time at batch 16 on a quiet machine, a quarter or more at batch 32 under load.
 */
export const VALIDATE_LOAD: LoadOptions = { offThread: true };

/**
 * Each image's evaluation view through the model, in batches decoded while the previous one
 * runs: one output row per image, labelled with the image's `row`. The inference bench runs
 * this too.
 */
export async function evalViewOutputs(
  items: AsyncIterable<{ jpeg: Buffer; id: string; row: number }>,
  runner: OnnxBatchModel,
  spec: PreprocessSpec,
  table: RowTable,
): Promise<void> {
  // Input tensors from the model's pool, reused batch after batch: a fresh 588 KiB tensor per
  // image kept V8's garbage collector busy (1 s of a profiled pair of Validates).
  const pool = runner.inputs;
  await runBatched(
    items,
    async ({ jpeg, id, row }) => ({ tensors: [await evalView(jpeg, spec, id, pool.take())], label: row }),
    runner,
    { batchSize: VALIDATE_BATCH, table, pool },
  );
}

export async function validateShard(store: ObjectStore, event: ValidateEvent): Promise<ValidationResult> {
  const started = Date.now();
  const { runId, task } = event;
  const model = await loadServingModel(store, keys.model(runId), VALIDATE_LOAD);
  const { classes } = await store.getJson<{ classes: string[] }>(keys.classes(runId));
  if (classes.length !== model.meta.labels.length || classes.some((c, i) => c !== model.meta.labels[i])) {
    throw new DataError(
      `${keys.model(runId)} was trained on ${model.meta.labels.length} classes that differ from this run's ${classes.length} (${keys.classes(runId)}): the model does not belong to this run`,
    );
  }
  const images: { id: string; label: number }[] = [];
  async function* items() {
    for await (const img of readShard(store, task.shardKey)) {
      images.push({ id: img.id, label: img.sample.label });
      // The row number travels as the output's label, so outputs map back to images in order.
      yield { jpeg: img.jpeg, id: img.id, row: images.length - 1 };
    }
  }
  const width = classes.length;
  const table = new RowTable(width);
  await evalViewOutputs(items(), model.runner, model.meta.preprocess, table);
  if (images.length !== task.count) {
    throw new DataError(
      `${task.shardKey} holds ${images.length} images, the plan says ${task.count}: run Preprocess again`,
    );
  }
  const probabilities = table.features;
  const order = table.labels;
  const predictions: Prediction[] = new Array(images.length);
  let correct = 0;
  for (let r = 0; r < order.length; r++) {
    const { id, label } = images[order[r]!]!;
    const top5 = topK(probabilities, r, width, 5);
    if (top5[0]?.label === label) correct++;
    predictions[order[r]!] = { id, label, top5, trueProbability: probabilities[r * width + label]! };
  }
  const shard: PredictionShard = {
    schemaVersion: 1,
    runId,
    shardKey: task.shardKey,
    modelSha256: model.sha256,
    predictions,
  };
  await store.putJson(task.predictionsKey, shard, { tags: INTERMEDIATE });
  logger.info(`test shard ${task.index}: ${correct}/${images.length} correct`, { key: task.predictionsKey });
  return {
    predictionsKey: task.predictionsKey,
    images: images.length,
    correct,
    seconds: (Date.now() - started) / 1000,
  };
}
