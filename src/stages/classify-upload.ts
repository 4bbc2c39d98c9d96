import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import * as z from 'zod';
import { sniffImage } from '../dataset/image-sniff.ts';
import { parseClassName } from '../dataset/profiles.ts';
import {
  errorMessage,
  InputError,
  isTransientServiceError,
  NotFoundError,
  TransientError,
  type UploadErrorCode,
  UploadRejectedError,
} from '../errors.ts';
import { resizedSize } from '../imaging/preprocess-image.ts';
import { logger } from '../log.ts';
import {
  loadServingModel,
  modelInput,
  type ServingModel,
  trainedShorterSide,
} from '../model/serving-model.ts';
import { topK } from '../model/top-k.ts';
import { count, integer, list, object, text } from '../schema/fields.ts';
import { parseInput } from '../schema/parse.ts';
import { type Champion, readChampion } from '../storage/champion.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { ImageFormat } from '../types.ts';

// Upload classification: uploads/<name> → predictions/<name>.json, with the champion model
// (models/current.json), preprocessed exactly as Preprocess + Validate see images. Bad input
// never throws: it becomes an error document where the prediction would be, so a broken upload
// costs one invocation, not a retry storm. Only transient S3 trouble throws (Lambda retries).

export const UPLOAD_PREFIX = 'uploads/';
export const PREDICTION_PREFIX = 'predictions/';
const IMAGE_SUFFIX = /\.(jpe?g|png|webp)$/i;
const TOP_K = 5;

/** Whether S3 notifications for this key should be classified (others are ignored). */
export function isUploadImageKey(key: string): boolean {
  return key.startsWith(UPLOAD_PREFIX) && IMAGE_SUFFIX.test(key.slice(UPLOAD_PREFIX.length));
}

/** uploads/a/b.jpg → predictions/a/b.jpg.json */
export function predictionKeyFor(uploadKey: string): string {
  return `${PREDICTION_PREFIX}${uploadKey.slice(UPLOAD_PREFIX.length)}.json`;
}

/** S3 notifications carry keys form-encoded: `+` is a space, the rest percent-encoded UTF-8. */
export function decodeEventKey(raw: string): string {
  return decodeURIComponent(raw.replaceAll('+', ' '));
}

export interface UploadLimits {
  maxBytes: number;
  /** Width × height from the header, checked before any pixel is decoded. */
  maxPixels: number;
}

export const DEFAULT_UPLOAD_LIMITS: Readonly<UploadLimits> = {
  maxBytes: 20 * 1024 * 1024,
  maxPixels: 40_000_000,
};

/** DOGBREED_UPLOAD_MAX_BYTES and DOGBREED_UPLOAD_MAX_PIXELS, else the defaults. */
/** An environment variable's whole number, or `fallback` when it is unset or empty. */
const envLimit = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((raw) => (raw === undefined || raw === '' ? String(fallback) : raw))
    .pipe(
      z
        .string()
        .regex(/^[1-9][0-9]*$/, { error: 'must be a positive whole number' })
        .transform(Number)
        .pipe(integer(1, Number.MAX_SAFE_INTEGER)),
    );

const UploadLimitsEnvSchema = object({
  DOGBREED_UPLOAD_MAX_BYTES: envLimit(DEFAULT_UPLOAD_LIMITS.maxBytes),
  DOGBREED_UPLOAD_MAX_PIXELS: envLimit(DEFAULT_UPLOAD_LIMITS.maxPixels),
}).transform((env) => ({
  maxBytes: env.DOGBREED_UPLOAD_MAX_BYTES,
  maxPixels: env.DOGBREED_UPLOAD_MAX_PIXELS,
}));

export function uploadLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): UploadLimits {
  return parseInput(
    UploadLimitsEnvSchema,
    env,
    { name: 'environment', bare: true },
    (message) => new InputError(`${message}: fix the function's environment`),
  );
}

export interface BreedScore {
  rank: number;
  breed: string;
  /** The class folder name the model was trained on, e.g. n02085620-Chihuahua. */
  class: string;
  wnid?: string;
  probability: number;
}

interface PredictionBase {
  schemaVersion: 1;
  bucket: string;
  key: string;
  model?: { runId: string; key: string; sha256: string };
  image?: { bytes: number; width?: number; height?: number; format?: ImageFormat };
  tookMs: number;
  classifiedAt: string;
}

export interface UploadPrediction extends PredictionBase {
  top5: BreedScore[];
  model: { runId: string; key: string; sha256: string };
}

export interface UploadFailure extends PredictionBase {
  error: { code: UploadErrorCode; message: string };
}

export type PredictionDocument = UploadPrediction | UploadFailure;

/** TransientError as is; a connection dropped mid-body (raw socket error) becomes one. */
function transient(err: unknown): TransientError | undefined {
  if (err instanceof TransientError) return err;
  return isTransientServiceError(err) ? new TransientError(errorMessage(err)) : undefined;
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/** The object's bytes, read no further than the limit, so a huge upload cannot exhaust memory. */
async function readUpload(store: ObjectStore, key: string, maxBytes: number): Promise<Buffer> {
  let stream: Readable;
  try {
    stream = await store.getStream(key);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new UploadRejectedError(
        'NotFound',
        `${key} no longer exists (deleted before it was read): upload it again`,
      );
    }
    throw err;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      stream.destroy();
      throw new UploadRejectedError(
        'TooLarge',
        `${key} is over the ${mib(maxBytes)} limit (DOGBREED_UPLOAD_MAX_BYTES): upload a smaller image`,
      );
    }
    chunks.push(chunk as Buffer);
  }
  if (total === 0)
    throw new UploadRejectedError('EmptyObject', `${key} is empty (0 bytes): upload the image again`);
  return Buffer.concat(chunks);
}

/**
 * The champion pointer, read whole on every upload (one GET notices a promotion), with the model it
 * names, kept while the pointer names the same model: models are never overwritten (a run writes
 * its own), so the same key and checksum mean the same model.
 */
let current: { id: string; model: Promise<ServingModel> } | undefined;

async function championModel(store: ObjectStore): Promise<{ champion: Champion; model: ServingModel }> {
  const champion = await readChampion(store);
  if (!champion) {
    throw new UploadRejectedError(
      'NoChampion',
      `no champion model yet (s3://${store.bucket}/${keys.champion()} is missing): run \`dogbreed run\` first, then upload again`,
    );
  }
  const id = `${store.bucket}/${champion.modelKey}@${champion.modelSha256}`;
  if (current?.id !== id) current = { id, model: loadServingModel(store, champion.modelKey) };
  const { model } = current;
  const unavailable = (why: string) =>
    new UploadRejectedError(
      'ModelUnavailable',
      `the champion model of run ${champion.runId} cannot be used (${why}): run \`dogbreed run\` to train and promote a new one`,
    );
  let served: ServingModel;
  try {
    served = await model;
  } catch (err) {
    // Not kept: the next upload tries again.
    if (current?.id === id) current = undefined;
    if (transient(err)) throw err;
    throw unavailable(errorMessage(err));
  }
  if (served.sha256 !== champion.modelSha256) {
    throw unavailable(
      `${champion.modelKey} has sha256 ${served.sha256}, ${keys.champion()} says ${champion.modelSha256}`,
    );
  }
  return { champion, model: served };
}

/** Header only: format and size, and the pixel limit, before anything is decoded. */
function checkHeader(key: string, bytes: Buffer, maxPixels: number) {
  const sniffed = sniffImage(bytes);
  if (!sniffed.ok) {
    const code = sniffed.reason.startsWith('not an image')
      ? 'NotAnImage'
      : sniffed.reason.startsWith('unsupported image format')
        ? 'UnsupportedFormat'
        : 'CorruptImage';
    const hint = code === 'CorruptImage' ? 'upload the whole file again' : 'upload a JPEG, PNG or WebP image';
    throw new UploadRejectedError(code, `${key}: ${sniffed.reason}: ${hint}`);
  }
  const pixels = sniffed.width * sniffed.height;
  if (pixels > maxPixels) {
    throw new UploadRejectedError(
      'TooManyPixels',
      `${key} is ${sniffed.width}×${sniffed.height} = ${pixels} pixels, over the limit of ${maxPixels} (DOGBREED_UPLOAD_MAX_PIXELS): upload a smaller image`,
    );
  }
  return sniffed;
}

async function classify(
  key: string,
  bytes: Buffer,
  header: ReturnType<typeof checkHeader>,
  model: ServingModel,
  limits: UploadLimits,
) {
  const resizeShorter = trainedShorterSide(model);
  // An extreme aspect ratio makes the resized image, not the upload, the bomb.
  const target = resizedSize(header.width, header.height, resizeShorter);
  if (target.width * target.height > limits.maxPixels) {
    throw new UploadRejectedError(
      'TooManyPixels',
      `${key}: aspect ratio too extreme (${header.width}×${header.height}): upload a less elongated image`,
    );
  }
  let tensor: Float32Array;
  let shown: { width: number; height: number };
  try {
    const input = await modelInput(model, bytes, key, { resizeShorter, maxPixels: limits.maxPixels });
    shown = { width: input.sourceWidth, height: input.sourceHeight };
    tensor = input.tensor;
  } catch (err) {
    throw new UploadRejectedError('CorruptImage', `${errorMessage(err)}: upload the whole file again`);
  }
  const labels = model.meta.labels;
  const probabilities = await model.runner.run([tensor]);
  const top5 = topK(probabilities, 0, labels.length, TOP_K).map(({ label, probability }, i) => {
    const { wnid, breed } = parseClassName(labels[label]!);
    return { rank: i + 1, breed, class: labels[label]!, ...(wnid ? { wnid } : {}), probability };
  });
  return { top5, image: { bytes: bytes.length, ...shown, format: header.format } };
}

export interface UploadRef {
  /** The decoded object key, under uploads/. */
  key: string;
  /** The size the notification reported: a larger upload is refused without reading it. */
  size?: number;
}

/**
 * Classifies one upload and writes predictions/<name>.json: the top-5 breeds, or an error.
 * Throws only when nothing could be written (S3 trouble), TransientError when a retry may help.
 */
export async function classifyUpload(
  store: ObjectStore,
  upload: UploadRef,
  limits: UploadLimits,
): Promise<PredictionDocument> {
  const started = performance.now();
  const { key } = upload;
  if (!isUploadImageKey(key)) throw new InputError(`${key} is not an image under ${UPLOAD_PREFIX}`);
  const base = { schemaVersion: 1 as const, bucket: store.bucket, key };
  const finish = () => ({
    tookMs: Math.round((performance.now() - started) * 10) / 10,
    classifiedAt: new Date().toISOString(),
  });
  let doc: PredictionDocument;
  let served: { champion: Champion; model: ServingModel } | undefined;
  let bytes: Buffer | undefined;
  try {
    if (upload.size !== undefined && upload.size > limits.maxBytes) {
      throw new UploadRejectedError(
        'TooLarge',
        `${key} is ${mib(upload.size)}, over the ${mib(limits.maxBytes)} limit (DOGBREED_UPLOAD_MAX_BYTES): upload a smaller image`,
      );
    }
    // The image and the model are fetched side by side; the image's problems are reported first.
    const [read, model] = await Promise.allSettled([
      readUpload(store, key, limits.maxBytes),
      championModel(store),
    ]);
    if (read.status === 'rejected') throw read.reason;
    bytes = read.value;
    const header = checkHeader(key, bytes, limits.maxPixels);
    if (model.status === 'rejected') throw model.reason;
    served = model.value;
    const result = await classify(key, bytes, header, served.model, limits);
    doc = { ...base, top5: result.top5, model: modelInfo(served), image: result.image, ...finish() };
  } catch (err) {
    const retry = transient(err);
    if (retry) throw retry;
    const rejected =
      err instanceof UploadRejectedError
        ? err
        : new UploadRejectedError(
            'InternalError',
            `${errorMessage(err)}: upload the image again; if it recurs, report it`,
          );
    doc = {
      ...base,
      error: { code: rejected.code, message: rejected.message },
      ...(served ? { model: modelInfo(served) } : {}),
      ...(bytes ? { image: imageInfo(bytes) } : {}),
      ...finish(),
    };
  }
  await store.putJson(predictionKeyFor(key), doc);
  if ('error' in doc) logger.warn(`${key}: ${doc.error.message}`, { key, code: doc.error.code });
  else logger.info(`${key}: ${doc.top5[0]?.breed} ${doc.top5[0]?.probability.toFixed(3)}`, { key });
  return doc;
}

/** What the header says about an upload that could not be classified, as far as it says. */
function imageInfo(bytes: Buffer): PredictionBase['image'] {
  const sniffed = sniffImage(bytes);
  return sniffed.ok
    ? { bytes: bytes.length, width: sniffed.width, height: sniffed.height, format: sniffed.format }
    : { bytes: bytes.length };
}

function modelInfo(served: { champion: Champion; model: ServingModel }) {
  return { runId: served.champion.runId, key: served.champion.modelKey, sha256: served.model.sha256 };
}

export interface UploadRecord extends UploadRef {
  bucket: string;
}

/**
 * The part of an S3 event notification this handler reads (modelled on Powertools' S3Schema,
 * which describes every field: S3 and s3rver fill the rest differently, and none of it is used).
 */
const S3RecordSchema = object({
  eventName: text(),
  s3: object({
    bucket: object({ name: text() }),
    object: object({ key: text(), size: count().optional() }),
  }),
});

export const S3EventSchema = object({
  /** Only in the test event S3 sends once when a notification is configured; it has no Records. */
  Event: z.string().optional(),
  Records: list(S3RecordSchema).optional(),
}).check((ctx) => {
  if (ctx.value.Event !== 's3:TestEvent' && ctx.value.Records === undefined)
    ctx.issues.push({
      code: 'custom',
      path: ['Records'],
      input: ctx.value,
      message: 'must be an array of S3 records, got nothing',
    });
});
export type S3Notification = z.output<typeof S3EventSchema>;

/**
 * The ObjectCreated records of an S3 notification that name an image under uploads/, keys
 * decoded. Anything else (other prefixes, other suffixes, removals, S3's test event) is ignored.
 */
export function uploadRecords(event: unknown): { uploads: UploadRecord[]; ignored: number } {
  const records = parseInput(S3EventSchema, event, { name: 'event' }).Records ?? [];
  const uploads: UploadRecord[] = [];
  records.forEach(({ eventName, s3 }, i) => {
    if (!eventName.startsWith('ObjectCreated:')) return;
    let key: string;
    try {
      key = decodeEventKey(s3.object.key);
    } catch {
      logger.warn(
        `event.Records[${i}].s3.object.key ${JSON.stringify(s3.object.key)} is not URL-encoded as S3 sends keys: ignored`,
      );
      return;
    }
    if (!isUploadImageKey(key)) return;
    const { size } = s3.object;
    uploads.push({ bucket: s3.bucket.name, key, ...(size !== undefined ? { size } : {}) });
  });
  return { uploads, ignored: records.length - uploads.length };
}
