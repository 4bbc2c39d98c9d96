import * as ort from 'onnxruntime-node';
import { evalView } from '../../src/model/image-tensor.ts';
import { loadModel } from '../../src/model/onnx-graph.ts';
import type { PreprocessSpec } from '../../src/model/types.ts';
import type { ObjectStore } from '../../src/storage/object-store.ts';
import { readShard } from '../../src/training/shard-reader.ts';

/**
 * Top-1 accuracy of a run's model.onnx on its own test shards, using only what the model
 * carries (its preprocessing metadata), as serving will.
 */
export async function testAccuracy(
  store: ObjectStore,
  runId: string,
): Promise<{ accuracy: number; images: number }> {
  const bytes = await store.getBytes(`runs/${runId}/model/model.onnx`);
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  const props = loadModel(bytes, 'model.onnx').metadataProps ?? [];
  const preprocess = JSON.parse(props.find((p) => p.key === 'preprocess')?.value ?? 'null') as PreprocessSpec;
  let correct = 0;
  let images = 0;
  for await (const o of store.list(`runs/${runId}/shards/test/`)) {
    for await (const img of readShard(store, o.key)) {
      const x = await evalView(img.jpeg, preprocess, img.id);
      const s = preprocess.cropSize;
      const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [1, 3, s, s]) });
      const p = out[session.outputNames[0]!]!.data as Float32Array;
      let best = 0;
      for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
      if (best === img.sample.label) correct++;
      images++;
    }
  }
  await session.release();
  return { accuracy: correct / images, images };
}
