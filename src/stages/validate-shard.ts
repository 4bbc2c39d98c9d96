import { DataError } from '../errors.ts';
import type { ValidateEvent } from '../events.ts';
import { logger } from '../log.ts';
import type { Prediction, PredictionShard } from '../metrics/types.ts';
import { RowTable, runBatched } from '../model/batch-model.ts';
import { evalView } from '../model/image-tensor.ts';
import { loadServingModel } from '../model/serving-model.ts';
import { topK } from '../model/top-k.ts';
import { keys } from '../storage/layout.ts';
import { INTERMEDIATE, type ObjectStore } from '../storage/object-store.ts';
import { readShard } from '../training/shard-reader.ts';
import type { ValidationResult } from '../types.ts';

// Validate, one test shard: the run's model.onnx (loaded once per container) over the shard's
// images, preprocessed as the model's own metadata says, in batches; one predictions object.

export const VALIDATE_BATCH = 32;

export async function validateShard(store: ObjectStore, event: ValidateEvent): Promise<ValidationResult> {
  const started = Date.now();
  const { runId, task } = event;
  const model = await loadServingModel(store, keys.model(runId));
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
      yield { img, row: images.length - 1 };
    }
  }
  const width = classes.length;
  const table = new RowTable(width);
  // Input tensors from the model's pool, reused batch after batch: a fresh 588 KiB tensor per
  // image kept V8's collector busy for about a quarter of Validate's main-thread time.
  const pool = model.runner.inputs;
  await runBatched(
    items(),
    // The row number travels as the "label", so outputs map back to images in order.
    async ({ img, row }) => ({
      tensors: [await evalView(img.jpeg, model.meta.preprocess, img.id, pool.take())],
      label: row,
    }),
    model.runner,
    { batchSize: VALIDATE_BATCH, table, pool },
  );
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
