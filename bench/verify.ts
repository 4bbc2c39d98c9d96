import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { parseConfig } from '../src/config.ts';
import { DatasetIndexer } from '../src/dataset/indexer.ts';
import { resolveProfile } from '../src/dataset/profiles.ts';
import { STANFORD_DOGS_CLASSES } from '../src/dataset/stanford-dogs-classes.ts';
import { readTar } from '../src/dataset/tar-reader.ts';
import { type TarFile, tarStream } from '../src/dataset/tar-writer.ts';
import type { VerifyEvent } from '../src/events.ts';
import { startLocalS3 } from '../src/local/s3-server.ts';
import { verifyDataset } from '../src/stages/verify-dataset.ts';
import { keys } from '../src/storage/layout.ts';
import { openStore } from '../src/storage/s3-store.ts';
import { makeJpegs } from './images.ts';
import { interleavedBest, type Measured, MiB, progress, round, runChecked } from './util.ts';

// VerifyDataset throughput over a multi-hundred-MB tarball of JPEGs, against `sha256sum` reading
// the same file: the step as it runs in local mode (object in s3rver, read through the AWS SDK),
// the core alone (tar reader + indexer + SHA-256 over a file stream), and a plain S3 GET that
// does nothing with the bytes, so the cost of each layer is visible.

const GOAL_RATIO = 0.8;
/** Chunk size of the core's file stream: Node's default, close to what an HTTP body delivers. */
const CORE_CHUNK = 64 * 1024;

interface Timing {
  bestSeconds: number;
  allSeconds: number[];
  mbPerSec: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function timing(run: Measured, bytes: number): Timing {
  return {
    bestSeconds: round(run.seconds),
    allSeconds: run.allSeconds,
    mbPerSec: round(bytes / MiB / run.seconds, 1),
  };
}

/** Real-looking layout: Images/<class>/<wnid>_<n>.jpg, classes in order, JPEGs reused under new names. */
function* members(jpegs: Buffer[], targetBytes: number): Generator<TarFile> {
  const avg = jpegs.reduce((s, j) => s + j.length, 0) / jpegs.length;
  const total = Math.ceil(targetBytes / (avg + 512 + 256));
  const perClass = Math.ceil(total / STANFORD_DOGS_CLASSES.length);
  for (let n = 0; n < total; n++) {
    const folder = STANFORD_DOGS_CLASSES[Math.floor(n / perClass)]!;
    const wnid = folder.slice(0, folder.indexOf('-'));
    yield { name: `Images/${folder}/${wnid}_${n}.jpg`, data: jpegs[n % jpegs.length]! };
  }
}

async function sha256sum(path: string): Promise<string> {
  const out = await runChecked('sha256sum', [path]);
  return out.slice(0, 64);
}

/** The step's work without S3: one pass that hashes, parses the tar and indexes every image. */
async function verifyCore(path: string): Promise<{ sha256: string; images: number }> {
  const hash = createHash('sha256');
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of createReadStream(path, { highWaterMark: CORE_CHUNK })) {
      hash.update(chunk as Buffer);
      yield chunk as Buffer;
    }
  }
  const indexer = new DatasetIndexer();
  for await (const entry of readTar(hashed())) indexer.add(entry);
  const index = indexer.finish(resolveProfile('imagefolder'));
  return { sha256: hash.digest('hex'), images: index.images };
}

export async function benchVerify(dir: string, quick: boolean) {
  const targetBytes = (quick ? 40 : 400) * MiB;
  const distinct = quick ? 60 : 300;
  const runs = quick ? 2 : 5;

  progress(`verify: encoding ${distinct} distinct JPEGs`);
  const jpegs = await makeJpegs(distinct, (i) => ({
    width: 400 + ((i * 37) % 101),
    height: 300 + ((i * 53) % 76),
  }));
  const tarPath = join(dir, 'images.tar');
  progress(`verify: writing a ${targetBytes / MiB} MiB tarball`);
  const files = [...members(jpegs, targetBytes)];
  await pipeline(tarStream(files), createWriteStream(tarPath));
  const bytes = (await stat(tarPath)).size;
  // Also the warm-up read: the page cache holds the file for every timed run.
  const sha256 = await sha256sum(tarPath);

  const bucket = 'bench-verify';
  const s3 = await startLocalS3({ directory: join(dir, 's3'), bucket });
  try {
    const store = openStore({ bucket, endpoint: s3.endpoint });
    const datasetId = sha256.slice(0, 16);
    const tarKey = keys.datasetTar(datasetId);
    progress('verify: uploading the tarball to the local S3');
    await store.upload(tarKey, createReadStream(tarPath, { highWaterMark: MiB }));
    const event: VerifyEvent = {
      runId: 'bench-verify',
      config: parseConfig({ source: pathToFileURL(tarPath).href, profile: 'imagefolder' }),
      dataset: { datasetId, tarKey, sha256, bytes, skipped: false },
    };
    /** A plain GET that only counts bytes: the S3 (s3rver + SDK) share of the step. */
    const getOnly = async (): Promise<number> => {
      let got = 0;
      let chunks = 0;
      for await (const chunk of await store.getStream(tarKey)) {
        got += (chunk as Buffer).length;
        chunks++;
      }
      if (got !== bytes) throw new Error(`S3 GET returned ${got} bytes, expected ${bytes}`);
      return chunks;
    };
    const chunks = await getOnly(); // warm-up read of s3rver's copy

    const m = await interleavedBest(runs, 'verify:', {
      sha256sum: async () => {
        if ((await sha256sum(tarPath)) !== sha256) throw new Error('sha256sum changed its answer');
      },
      core: async () => {
        const core = await verifyCore(tarPath);
        if (core.sha256 !== sha256 || core.images !== files.length)
          throw new Error(
            `core: ${core.sha256} / ${core.images} images, expected ${sha256} / ${files.length}`,
          );
      },
      s3GetOnly: getOnly,
      // verifyDataset itself fails when the streamed SHA-256 or size differ from the event's.
      step: async () => {
        const result = await verifyDataset(store, event);
        if (result.images !== files.length)
          throw new Error(`VerifyDataset indexed ${result.images} images, expected ${files.length}`);
      },
    });

    const base = m.sha256sum;
    const vs = (x: Measured) => ({
      ...timing(x, bytes),
      ratio: round(base.seconds / x.seconds),
      ratioOfMedians: round(median(base.allSeconds) / median(x.allSeconds)),
    });
    const stepRatio = base.seconds / m.step.seconds;
    return {
      goal: `VerifyDataset step throughput >= ${GOAL_RATIO} x sha256sum on the same file (best runs)`,
      meetsGoal: stepRatio >= GOAL_RATIO,
      input: {
        tarMB: round(bytes / MiB, 1),
        members: files.length,
        distinctJpegs: distinct,
        avgJpegKB: round(jpegs.reduce((sum, j) => sum + j.length, 0) / jpegs.length / 1024, 1),
        runsEach: runs,
      },
      sha256sum: timing(base, bytes),
      step: vs(m.step),
      core: { ...vs(m.core), chunkKB: CORE_CHUNK / 1024 },
      s3GetOnly: { ...vs(m.s3GetOnly), avgChunkKB: round(bytes / chunks / 1024, 1) },
    };
  } finally {
    await s3.close();
  }
}
