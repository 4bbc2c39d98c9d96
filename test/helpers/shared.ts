import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';

// Real Stanford Dogs photos and a real backbone live beside the project in ../shared (always in
// CI). A fresh clone may not have it: those tests then say so and skip — the only skip allowed.

export const SHARED_DIR = fileURLToPath(new URL('../../../shared', import.meta.url));
export const SHARED_SAMPLE_DIR = `${SHARED_DIR}/data/stanford-dogs-sample`;
export const SHARED_BACKBONE = `${SHARED_DIR}/models/mobilenetv2-12-int8/mobilenetv2-12-int8.onnx`;
export const hasShared = existsSync(SHARED_SAMPLE_DIR);

export const describeShared = hasShared ? describe : describe.skip;
if (!hasShared) {
  console.warn(
    `../shared is absent (looked for ${SHARED_SAMPLE_DIR}): tests on real Stanford Dogs photos are skipped`,
  );
}
/** The second real backbone: ResNet-50 (float16 weights, 2048-d features); see its README. */
export const SHARED_RESNET50 = `${SHARED_DIR}/models/resnet50-keras-fp16/resnet50-keras-fp16.onnx`;
