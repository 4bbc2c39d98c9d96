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
import { keys } from '../src/stages/keys.ts';
import { verifyDataset } from '../src/stages/verify-dataset.ts';
import { createS3Client, S3ObjectStore } from '../src/storage/s3-store.ts';
import { makeJpegs } from './images.ts';
import { bestOf, MiB, progress, round, runChecked } from './util.ts';

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

function timing(run: { seconds: number; allSeconds: number[] }, bytes: number): Timing {
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
  const runs = quick ? 2 : 3;

  progress(`verify: encoding ${distinct} distinct JPEGs`);
  const jpegs = await makeJpegs(distinct, (i) => ({
    width: 400 + ((i * 37) % 101),
    height: 300 + ((i * 53) % 76),
  }));
  const tarPath = join(dir, 'images.tar');
  progress(`verify: writing a ${targetBytes / MiB} MiB tarball`);
  let memberCount = 0;
  const files = members(jpegs, targetBytes);
  await pipeline(
    tarStream(
      (function* () {
        for (const f of files) {
          memberCount++;
          yield f;
        }
      })(),
    ),
    createWriteStream(tarPath),
  );
  const bytes = (await stat(tarPath)).size;

  // Warm-up read: the page cache holds the file for every timed run on both sides.
  const sha256 = await sha256sum(tarPath);
  const baseline = await bestOf(runs, 'verify: sha256sum', () => sha256sum(tarPath));

  const core = await bestOf(runs, 'verify: core (file stream)', () => verifyCore(tarPath));
  if (core.value.sha256 !== sha256 || core.value.images !== memberCount)
    throw new Error(
      `core: got ${core.value.sha256} / ${core.value.images} images, expected ${sha256} / ${memberCount}`,
    );

  const bucket = 'bench-verify';
  const s3 = await startLocalS3({ directory: join(dir, 's3'), bucket });
  try {
    const store = new S3ObjectStore(createS3Client({ bucket, endpoint: s3.endpoint }), bucket);
    const datasetId = sha256.slice(0, 16);
    const tarKey = keys.datasetTar(datasetId);
    progress('verify: uploading the tarball to the local S3');
    await store.upload(tarKey, createReadStream(tarPath, { highWaterMark: MiB }));

    // A plain GET that only counts bytes: the S3 (s3rver + SDK) share of the step. Its first run
    // also warms the page cache for s3rver's copy of the object.
    let chunks = 0;
    const getOnly = await bestOf(runs, 'verify: S3 GET only', async () => {
      chunks = 0;
      let got = 0;
      for await (const chunk of await store.getStream(tarKey)) {
        got += (chunk as Buffer).length;
        chunks++;
      }
      if (got !== bytes) throw new Error(`S3 GET returned ${got} bytes, expected ${bytes}`);
    });

    const event: VerifyEvent = {
      runId: 'bench-verify',
      config: parseConfig({ source: pathToFileURL(tarPath).href, profile: 'imagefolder' }),
      dataset: { datasetId, tarKey, sha256, bytes, skipped: false },
    };
    const step = await bestOf(runs, 'verify: VerifyDataset step', () => verifyDataset(store, event));
    if (step.value.images !== memberCount)
      throw new Error(`VerifyDataset indexed ${step.value.images} images, expected ${memberCount}`);

    const stepRatio = baseline.seconds / step.seconds;
    return {
      goal: `VerifyDataset step throughput >= ${GOAL_RATIO} x sha256sum on the same file`,
      meetsGoal: stepRatio >= GOAL_RATIO,
      input: {
        tarMB: round(bytes / MiB, 1),
        members: memberCount,
        distinctJpegs: distinct,
        avgJpegKB: round(jpegs.reduce((s, j) => s + j.length, 0) / jpegs.length / 1024, 1),
        runsPerSide: runs,
      },
      sha256sum: timing(baseline, bytes),
      step: { ...timing(step, bytes), ratio: round(stepRatio) },
      core: {
        ...timing(core, bytes),
        ratio: round(baseline.seconds / core.seconds),
        chunkKB: CORE_CHUNK / 1024,
      },
      s3GetOnly: {
        ...timing(getOnly, bytes),
        ratio: round(baseline.seconds / getOnly.seconds),
        avgChunkKB: round(bytes / chunks / 1024, 1),
      },
    };
  } finally {
    await s3.close();
  }
}
