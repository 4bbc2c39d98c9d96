import { readFile } from 'node:fs/promises';
import { basename, extname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { errorMessage, InputError } from '../errors.ts';
import type { LocalS3 } from '../local/s3-server.ts';
import { attachUploadTrigger, type UploadTrigger } from '../local/upload-trigger.ts';
import { setLogSink } from '../log.ts';
import { numberAbove, object } from '../schema/fields.ts';
import {
  isUploadImageKey,
  type PredictionDocument,
  predictionKeyFor,
  UPLOAD_PREFIX,
} from '../stages/classify-upload.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { decimal, parseFlags } from './flags.ts';
import { TARGET_OPTIONS } from './report-commands.ts';
import { withStore } from './workspace.ts';

// `dogbreed classify <image…>`: what a user of the bucket does — drop images into uploads/ and
// read the predictions that appear — on the workspace's local S3, with the upload trigger on.

type Out = (line: string) => void;

const POLL_MS = 100;
const DEFAULT_TIMEOUT_S = 30;
const CONTENT_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
};

interface Outcome {
  file: string;
  upload: string;
  prediction: string;
  result?: PredictionDocument;
}

const ClassifyOptionsSchema = object({ timeout: numberAbove(0, 3600).default(DEFAULT_TIMEOUT_S) });
const CLASSIFY_FLAGS = { timeout: { path: ['timeout'], read: decimal } };

/** uploads/<name>, or <stem>-2<ext>, -3… when that upload or its prediction already exists. */
async function freeUploadKey(store: ObjectStore, file: string, taken: Set<string>): Promise<string> {
  const ext = extname(file);
  const stem = basename(file, ext);
  for (let n = 1; ; n++) {
    const key = `${UPLOAD_PREFIX}${n === 1 ? stem : `${stem}-${n}`}${ext}`;
    if (taken.has(key)) continue;
    if (!(await store.head(key)) && !(await store.head(predictionKeyFor(key)))) {
      taken.add(key);
      return key;
    }
  }
}

/** The prediction document once it appears (it is written with one PUT), or undefined at the deadline. */
async function waitFor(store: ObjectStore, key: string, deadline: number) {
  for (;;) {
    const doc = await store.getJsonIfExists<PredictionDocument>(key);
    if (doc) return doc;
    if (Date.now() >= deadline) return undefined;
    await sleep(POLL_MS);
  }
}

function print(o: Outcome, bucket: string, timeoutS: number, out: Out): void {
  const at = (key: string) => `s3://${bucket}/${key}`;
  const r = o.result;
  if (!r) {
    out(
      `${o.file}: no prediction after ${timeoutS} s. Uploaded to ${at(o.upload)}; the prediction would appear at ${at(o.prediction)} (try a longer --timeout)`,
    );
  } else if ('error' in r) {
    out(`${o.file}: ${r.error.code}: ${r.error.message}`);
  } else {
    out(`${o.file}: ${r.top5[0]?.breed} (${((r.top5[0]?.probability ?? 0) * 100).toFixed(1)}%)`);
    out(`  ${'breed'.padEnd(34)} probability`);
    for (const s of r.top5) out(`  ${s.breed.padEnd(34)} ${s.probability.toFixed(3).padStart(11)}`);
    const size = r.image?.width
      ? `${r.image.width}×${r.image.height} ${r.image.format?.toUpperCase()} · `
      : '';
    out(`  model of run ${r.model.runId} · ${size}${r.tookMs} ms · ${at(o.prediction)}`);
  }
}

/**
 * `dogbreed classify <image…> [--json] [--timeout S] [--workspace DIR]`. Exit 0 when every image
 * got a prediction, 1 when any got an error or none in time. `trigger: false` leaves the upload
 * trigger off, so nothing answers (what a missing S3 notification looks like).
 */
export async function classifyCommand(
  args: string[],
  out: Out,
  opts: { trigger?: boolean } = {},
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      ...TARGET_OPTIONS,
    },
    strict: true,
  });
  if (positionals.length === 0) throw new InputError('give one or more images: dogbreed classify <image…>');
  const { timeout: timeoutS } = parseFlags(ClassifyOptionsSchema, values, CLASSIFY_FLAGS);
  const images: { file: string; bytes: Buffer }[] = [];
  for (const file of positionals) {
    if (!isUploadImageKey(`${UPLOAD_PREFIX}${basename(file)}`)) {
      throw new InputError(`${file}: only .jpg, .jpeg, .png and .webp images are classified`);
    }
    const bytes = await readFile(resolve(file)).catch((err: unknown) => {
      throw new InputError(`cannot read ${file}: ${errorMessage(err)}`);
    });
    images.push({ file, bytes });
  }

  return withStore(values, (store, local) =>
    classifyAll(store, local, images, { json: values.json === true, timeoutS, trigger: opts.trigger }, out),
  );
}

async function classifyAll(
  store: ObjectStore,
  local: LocalS3 | undefined,
  images: { file: string; bytes: Buffer }[],
  opts: { json: boolean; timeoutS: number; trigger?: boolean },
  out: Out,
): Promise<number> {
  const { timeoutS } = opts;
  // The handler's own log lines would repeat what is printed here; keep its errors.
  const restoreLog = setLogSink((level, message) => {
    if (level === 'error') process.stderr.write(`dogbreed classify: ${message}\n`);
  });
  // On a deployed stage the bucket's notification invokes the Lambda; locally, the trigger does.
  const trigger: UploadTrigger | undefined =
    local && opts.trigger !== false ? attachUploadTrigger(local) : undefined;
  let timedOut = false;
  try {
    const taken = new Set<string>();
    const outcomes: Outcome[] = [];
    for (const { file, bytes } of images) {
      const upload = await freeUploadKey(store, file, taken);
      await store.put(upload, bytes, { contentType: CONTENT_TYPES[extname(upload).toLowerCase()] });
      outcomes.push({ file, upload, prediction: predictionKeyFor(upload) });
    }
    const deadline = Date.now() + timeoutS * 1000;
    for (const o of outcomes) {
      o.result = await waitFor(store, o.prediction, deadline);
      if (!o.result) timedOut = true;
    }
    if (opts.json) {
      out(
        JSON.stringify(
          outcomes.map((o) => ({ ...o, result: o.result ?? null })),
          null,
          2,
        ),
      );
    } else {
      for (const o of outcomes) print(o, store.bucket, timeoutS, out);
    }
    return outcomes.every((o) => o.result && !('error' in o.result)) ? 0 : 1;
  } finally {
    // Work still in flight after a timeout is dropped with the server, not waited for.
    if (trigger && !timedOut) await trigger.idle();
    trigger?.detach();
    restoreLog();
  }
}
