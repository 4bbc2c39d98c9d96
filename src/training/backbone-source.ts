import { createHash } from 'node:crypto';
import { openSource, parseSource } from '../dataset/sources.ts';
import { DataError, errorMessage, InputError } from '../errors.ts';
import { IMAGENET_WNIDS } from '../model/imagenet-wnids.ts';
import { buildTinyBackbone } from '../model/tiny-backbone.ts';
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../model/types.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { TrainingConfig } from './training-config.ts';

// Where the frozen backbone comes from: the tiny one built here (synthetic sample, tests) or
// any ONNX ImageNet-style classifier given by URI, with its preprocessing.

export interface ResolvedBackbone {
  bytes: Uint8Array;
  source: string;
  sha256: string;
  spec: PreprocessSpec;
  /** wnids of the backbone's own outputs, when known (ImageNet-1k classifiers). */
  outputLabels?: readonly string[];
}

/** The tiny backbone's input: small, since its features are colour and stripe statistics. */
export const TINY_INPUT = 64;
const TINY_PREPROCESS: PreprocessSpec = { ...IMAGENET_PREPROCESS, resizeShorter: 73, cropSize: TINY_INPUT };

/** Largest backbone file read into memory. */
const MAX_BACKBONE_BYTES = 1024 * 1024 * 1024;

async function readAll(source: string, store: ObjectStore): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of await openSource(parseSource(source), store)) {
    size += (chunk as Buffer).length;
    if (size > MAX_BACKBONE_BYTES)
      throw new DataError(`backbone ${source} is over 1 GiB: not an ONNX classifier?`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** One of the run's backbones (`uri`, an entry of cfg.backbone), with the run's preprocessing settings. */
export async function loadBackbone(
  uri: string,
  cfg: TrainingConfig,
  store: ObjectStore,
): Promise<ResolvedBackbone> {
  if (uri === 'tiny') {
    const bytes = buildTinyBackbone({ inputSize: TINY_INPUT });
    return {
      bytes,
      source: 'tiny',
      sha256: createHash('sha256').update(bytes).digest('hex'),
      spec: { ...TINY_PREPROCESS, ...cfg.preprocess },
    };
  }
  let bytes: Buffer;
  try {
    bytes = await readAll(uri, store);
  } catch (err) {
    if (err instanceof InputError || err instanceof DataError) {
      throw new DataError(`backbone ${uri} cannot be read: ${err.message}`);
    }
    throw new DataError(`backbone ${uri} cannot be read: ${errorMessage(err)}; check the URI (--backbone)`);
  }
  if (bytes.length === 0) throw new DataError(`backbone ${uri} is empty (0 bytes)`);
  return {
    bytes,
    source: uri,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    spec: { ...IMAGENET_PREPROCESS, ...cfg.preprocess },
    outputLabels: cfg.backboneLabels === 'imagenet' ? IMAGENET_WNIDS : undefined,
  };
}
