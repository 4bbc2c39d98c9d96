import util from 'node:util';

/**
 * @tensorflow/tfjs-node(-gpu) 4.22.0, the latest release, calls util.isNullOrUndefined on every
 * op, and Node 23 removed it (tensorflow/tfjs#8609: fixed upstream in #8425, never released).
 * The container runs Node 24, so the function is put back, with its documented meaning, before
 * TensorFlow.js runs. A no-op on Node 20, which still has it.
 */
export function restoreUtilForTfjsNode(): void {
  const legacy = util as unknown as Record<string, unknown>;
  if (typeof legacy.isNullOrUndefined !== 'function') {
    legacy.isNullOrUndefined = (value: unknown) => value === null || value === undefined;
  }
}
