import { readTar } from '../dataset/tar-reader.ts';
import { DataError } from '../errors.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { ShardSample } from '../types.ts';

// Reads a WebDataset shard written by Preprocess: `<id>.jpg` then `<id>.json`, pair by pair.

export interface ShardImage {
  id: string;
  jpeg: Buffer;
  sample: ShardSample;
}

/** A shard is written by Preprocess, or copied from the step cache: --no-cache writes it afresh. */
const SHARD_REMEDY = 'the shard is damaged: run again with --no-cache so Preprocess writes it again';

export async function* readShard(store: ObjectStore, key: string): AsyncGenerator<ShardImage> {
  let pending: { id: string; jpeg: Buffer } | undefined;
  const archive = { name: key, remedy: SHARD_REMEDY };
  for await (const entry of readTar(await store.getStream(key), { archive })) {
    if (entry.type !== 'file' || !entry.data) throw new DataError(`${key}: unexpected member ${entry.name}`);
    const dot = entry.name.indexOf('.');
    const id = entry.name.slice(0, dot);
    const ext = entry.name.slice(dot + 1);
    if (ext === 'jpg') {
      if (pending) throw new DataError(`${key}: ${pending.id}.jpg has no ${pending.id}.json after it`);
      // Copy: the reader's buffers may be views of chunks that are reused.
      pending = { id, jpeg: Buffer.from(entry.data) };
    } else if (ext === 'json' && pending?.id === id) {
      let sample: ShardSample;
      try {
        sample = JSON.parse(entry.data.toString('utf8')) as ShardSample;
      } catch {
        throw new DataError(`${key}: ${entry.name} is not valid JSON`);
      }
      if (!Number.isInteger(sample.label)) throw new DataError(`${key}: ${entry.name} has no integer label`);
      yield { id, jpeg: pending.jpeg, sample };
      pending = undefined;
    } else {
      throw new DataError(
        `${key}: unexpected member ${entry.name} (expected <id>.jpg followed by <id>.json)`,
      );
    }
  }
  if (pending) throw new DataError(`${key}: ${pending.id}.jpg has no ${pending.id}.json after it`);
}
