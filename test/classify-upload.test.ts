import { createReadStream } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Context, S3Event, S3EventRecord } from 'aws-lambda';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ClassifySummary, handler } from '../functions/classify-upload.ts';
import { classifyCommand } from '../src/cli/classify-command.ts';
import { parseClassName } from '../src/dataset/profiles.ts';
import { ManifestRowSchema } from '../src/dataset/rows.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { readTar } from '../src/dataset/tar-reader.ts';
import { InputError, TransientError } from '../src/errors.ts';
import { LOCAL_BUCKET, runLocalPipeline, useLocalS3 } from '../src/local/pipeline.ts';
import { type LocalS3, startLocalS3 } from '../src/local/s3-server.ts';
import { attachUploadTrigger, encodeEventKey } from '../src/local/upload-trigger.ts';
import {
  type PredictionDocument,
  type UploadFailure,
  type UploadPrediction,
  uploadLimitsFromEnv,
  uploadRecords,
} from '../src/stages/classify-upload.ts';
import type { Champion } from '../src/storage/champion.ts';
import { createS3Client, openStore, type S3ObjectStore } from '../src/storage/s3-store.ts';
import { parseJsonl } from '../src/util/jsonl.ts';
import { startTestS3 } from './helpers/local-s3.ts';
import { describeShared, SHARED_BACKBONE, SHARED_SAMPLE_DIR } from './helpers/shared.ts';

// Upload classification: the Lambda handler fed S3 notification events shaped as S3 sends them
// (keys URL-encoded), against a real local S3 holding a champion trained by the local pipeline;
// the local trigger that turns s3rver's events into invocations; and `dogbreed classify`.

const context = { getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

/** One notification record as S3 sends it; `key` is already encoded the way S3 encodes it. */
function record(key: string, size: number, eventName = 'ObjectCreated:Put', bucket = LOCAL_BUCKET) {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: 'us-east-1',
    eventTime: new Date().toISOString(),
    eventName,
    userIdentity: { principalId: 'AWS:AIDAEXAMPLE' },
    requestParameters: { sourceIPAddress: '127.0.0.1' },
    responseElements: {
      'x-amz-request-id': 'C3D13FE58DE4C810',
      'x-amz-id-2': 'FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD',
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'classify-uploads',
      bucket: {
        name: bucket,
        ownerIdentity: { principalId: 'A3NL1KOZZKExample' },
        arn: `arn:aws:s3:::${bucket}`,
      },
      object: { key, size, eTag: 'd41d8cd98f00b204e9800998ecf8427e', sequencer: '0055AED6DCD90281E5' },
    },
  } as S3EventRecord;
}

const event = (...records: S3EventRecord[]): S3Event => ({ Records: records });
const invoke = (e: unknown) => handler(e as S3Event, context) as Promise<ClassifySummary>;

let workspace: string;
let champion: Champion;
/** Test-split images of the synthetic sample with their class folder. */
let samples: { name: string; class: string; data: Buffer }[];

async function sampleImages(tarPath: string, members: Map<string, string>) {
  const out: { name: string; class: string; data: Buffer }[] = [];
  for await (const e of readTar(createReadStream(tarPath))) {
    const cls = members.get(e.name);
    if (cls && e.data) out.push({ name: basename(e.name), class: cls, data: Buffer.from(e.data) });
  }
  return out;
}

beforeAll(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'dogbreed-classify-'));
  const tar = join(workspace, 'sample.tar');
  await writeSampleTarball(tar, { classes: 4, perClass: 12, seed: 7 });
  const run = await runLocalPipeline({
    workspace,
    config: { source: tar, seed: 3, shardSize: 10, resizeShorter: 64 },
    runId: 'champ',
  });
  expect(run.status, `${run.error}: ${run.cause}`).toBe('SUCCEEDED');
  const s3 = await startLocalS3({ directory: join(workspace, 's3'), bucket: LOCAL_BUCKET });
  try {
    const store = openStore({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint });
    champion = await store.getJson<Champion>('models/current.json');
    const rows = parseJsonl(
      await store.getText('runs/champ/manifests/test.jsonl'),
      'test',
      ManifestRowSchema,
    );
    samples = await sampleImages(tar, new Map(rows.map((r) => [r.member, r.class])));
  } finally {
    await s3.close();
  }
}, 120_000);
afterAll(() => rm(workspace, { recursive: true, force: true }));

describe('classify-upload handler on S3 events', () => {
  let s3: LocalS3;
  let store: S3ObjectStore;
  let restoreEnv: () => void;
  /** Every key this suite put under uploads/. */
  const uploaded = new Set<string>();

  const put = async (key: string, body: Buffer | string) => {
    await store.put(key, body);
    uploaded.add(key);
    return Buffer.byteLength(body);
  };
  /** Puts the object and sends the notification S3 would, for that one object. */
  const upload = async (key: string, body: Buffer | string) =>
    invoke(event(record(encodeEventKey(key), await put(key, body))));
  const prediction = <T extends PredictionDocument>(key: string) =>
    store.getJson<T>(`predictions/${key.slice('uploads/'.length)}.json`);

  beforeAll(async () => {
    s3 = await startLocalS3({ directory: join(workspace, 's3'), bucket: LOCAL_BUCKET });
    store = openStore({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint });
    restoreEnv = useLocalS3(s3.endpoint, s3.bucket);
  });
  afterEach(() => {
    delete process.env.DOGBREED_UPLOAD_MAX_BYTES;
    delete process.env.DOGBREED_UPLOAD_MAX_PIXELS;
  });
  afterAll(async () => {
    restoreEnv();
    await s3.close();
  });

  it('classifies an upload with the champion: the true breed first, top-5 with names, model and image facts', async () => {
    expect(samples.length).toBeGreaterThanOrEqual(4);
    const classes = new Set(samples.map((s) => s.class));
    expect(classes.size).toBe(4);
    for (const cls of classes) {
      const sample = samples.find((s) => s.class === cls)!;
      const key = `uploads/synthetic/${sample.name}`;
      const summary = await upload(key, sample.data);
      expect(summary).toEqual({
        processed: 1,
        succeeded: 1,
        failed: 0,
        ignored: 0,
        keys: [`predictions/synthetic/${sample.name}.json`],
      });
      const doc = await prediction<UploadPrediction>(key);
      expect(doc.top5[0]?.class, sample.name).toBe(cls);
      // 4 classes: the "top 5" lists all 4, most probable first
      expect(doc.top5.map((t) => t.rank)).toEqual([1, 2, 3, 4]);
      const { wnid, breed } = parseClassName(cls);
      expect(doc.top5[0]).toMatchObject({ breed, wnid, class: cls });
      expect(doc.top5[0]!.breed).not.toMatch(/^n\d{8}/);
      const p = doc.top5.map((t) => t.probability);
      expect([...p].sort((a, b) => b - a)).toEqual(p);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      expect(doc.model).toEqual({ runId: 'champ', key: champion.modelKey, sha256: champion.modelSha256 });
      const meta = await sharp(sample.data).metadata();
      expect(doc.image).toEqual({
        bytes: sample.data.length,
        width: meta.width,
        height: meta.height,
        format: 'jpeg',
      });
      expect(doc.tookMs).toBeGreaterThan(0);
      expect(doc).toMatchObject({ schemaVersion: 1, bucket: LOCAL_BUCKET, key });
    }
  });

  it.each([
    ['spaces', 'uploads/my dog.jpg', 'uploads/my+dog.jpg'],
    ['a plus sign', 'uploads/dog+cat.jpg', 'uploads/dog%2Bcat.jpg'],
    [
      'unicode',
      'uploads/hündchen/чихуахуа 🐕.jpeg',
      'uploads/h%C3%BCndchen/%D1%87%D0%B8%D1%85%D1%83%D0%B0%D1%85%D1%83%D0%B0+%F0%9F%90%95.jpeg',
    ],
    ['a percent sign and parentheses', 'uploads/100% dog (1).JPG', 'uploads/100%25+dog+%281%29.JPG'],
  ])('decodes keys with %s as S3 encodes them', async (_what, key, encoded) => {
    expect(encodeEventKey(key)).toBe(encoded);
    const size = await put(key, samples[0]!.data);
    const summary = await invoke(event(record(encoded, size)));
    const predictionKey = `predictions/${key.slice('uploads/'.length)}.json`;
    expect(summary.keys).toEqual([predictionKey]);
    expect(summary.succeeded).toBe(1);
    expect((await store.getJson<UploadPrediction>(predictionKey)).key).toBe(key);
  });

  describe('bad uploads get an error document, never an exception', () => {
    const expectError = async (key: string, code: string, message: RegExp) => {
      const doc = await prediction<UploadFailure>(key);
      expect(doc.error.code).toBe(code);
      expect(doc.error.message).toMatch(message);
      expect(doc.key).toBe(key);
      expect('top5' in doc).toBe(false);
      return doc;
    };

    it('not an image', async () => {
      const summary = await upload('uploads/bad/notes.jpg', 'hello, this is not a photo');
      expect(summary).toMatchObject({ processed: 1, succeeded: 0, failed: 1 });
      await expectError(
        'uploads/bad/notes.jpg',
        'NotAnImage',
        /not an image: looks like text.*upload a JPEG, PNG or WebP/,
      );
    });

    it('an image format the model does not take', async () => {
      const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
        .gif()
        .toBuffer();
      await upload('uploads/bad/animated.png', gif);
      await expectError('uploads/bad/animated.png', 'UnsupportedFormat', /GIF/);
    });

    it('a truncated image', async () => {
      const jpeg = samples[0]!.data;
      await upload('uploads/bad/cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2)));
      await expectError('uploads/bad/cut.jpg', 'CorruptImage', /truncated JPEG.*upload the whole file again/);
    });

    it('corrupt pixel data behind a valid header', async () => {
      const png = await sharp(samples[0]!.data).png().toBuffer();
      const idat = png.indexOf(Buffer.from('IDAT'));
      // The chunk structure stays intact (the header check passes); the compressed pixels do not.
      for (let i = idat + 6; i < idat + 40; i++) png[i] = (i * 37) % 255;
      await upload('uploads/bad/garbage.png', png);
      const doc = await expectError(
        'uploads/bad/garbage.png',
        'CorruptImage',
        /cannot be decoded.*upload the whole file again/,
      );
      expect(doc.image).toMatchObject({ bytes: png.length, format: 'png' });
    });

    it('an empty object', async () => {
      await upload('uploads/bad/empty.webp', Buffer.alloc(0));
      await expectError('uploads/bad/empty.webp', 'EmptyObject', /empty \(0 bytes\)/);
    });

    it('over the byte limit: refused by the size S3 reports, and by what is read when S3 says nothing', async () => {
      process.env.DOGBREED_UPLOAD_MAX_BYTES = '1000';
      const big = samples[0]!.data;
      expect(big.length).toBeGreaterThan(1000);
      await upload('uploads/bad/big.jpg', big);
      await expectError(
        'uploads/bad/big.jpg',
        'TooLarge',
        /over the 0\.0 MiB limit \(DOGBREED_UPLOAD_MAX_BYTES\)/,
      );
      await put('uploads/bad/big-unsized.jpg', big);
      const unsized = record(encodeEventKey('uploads/bad/big-unsized.jpg'), 0);
      delete (unsized.s3.object as { size?: number }).size;
      await invoke(event(unsized));
      await expectError('uploads/bad/big-unsized.jpg', 'TooLarge', /DOGBREED_UPLOAD_MAX_BYTES/);
    });

    it('a decompression bomb is refused by its header, before decoding', async () => {
      const small = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#884422' } })
        .jpeg()
        .toBuffer();
      const bomb = Buffer.from(small);
      const sof = bomb.indexOf(Buffer.from([0xff, 0xc0]));
      bomb.writeUInt16BE(60000, sof + 5);
      bomb.writeUInt16BE(60000, sof + 7);
      const before = process.memoryUsage().rss;
      await upload('uploads/bad/bomb.jpg', bomb);
      expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
      const doc = await expectError(
        'uploads/bad/bomb.jpg',
        'TooManyPixels',
        /60000×60000 = 3600000000 pixels, over the limit of 40000000 \(DOGBREED_UPLOAD_MAX_PIXELS\)/,
      );
      expect(doc.image).toEqual({ bytes: bomb.length, width: 60000, height: 60000, format: 'jpeg' });
      // the limit is configurable
      process.env.DOGBREED_UPLOAD_MAX_PIXELS = '100';
      await upload('uploads/bad/small-but-over.jpg', small);
      await expectError(
        'uploads/bad/small-but-over.jpg',
        'TooManyPixels',
        /1200 pixels, over the limit of 100/,
      );
    });

    it('an object deleted before it is read', async () => {
      const size = await put('uploads/bad/gone.jpg', samples[0]!.data);
      await store.delete('uploads/bad/gone.jpg');
      uploaded.delete('uploads/bad/gone.jpg');
      const summary = await invoke(event(record('uploads/bad/gone.jpg', size)));
      expect(summary).toMatchObject({ processed: 1, failed: 1 });
      await expectError('uploads/bad/gone.jpg', 'NotFound', /no longer exists.*upload it again/);
    });

    it('a bad limit in the environment is a configuration error that says which variable', async () => {
      process.env.DOGBREED_UPLOAD_MAX_BYTES = 'lots';
      await expect(invoke(event(record('uploads/x.jpg', 1)))).rejects.toThrow(
        `DOGBREED_UPLOAD_MAX_BYTES must be a positive whole number, got "lots": fix the function's environment`,
      );
    });

    it.each([
      [{}, { maxBytes: 20 * 1024 * 1024, maxPixels: 40_000_000 }],
      [
        { DOGBREED_UPLOAD_MAX_BYTES: '', DOGBREED_UPLOAD_MAX_PIXELS: '1000' },
        { maxBytes: 20 * 1024 * 1024, maxPixels: 1000 },
      ],
    ])('reads the limits from the environment, defaults for unset or empty ones (%j)', (env, limits) => {
      expect(uploadLimitsFromEnv(env)).toEqual(limits);
    });

    it.each(['0', '1.5', '-3', '1e6', ' 12'])('refuses %j as a limit, naming the variable', (raw) => {
      expect(() => uploadLimitsFromEnv({ DOGBREED_UPLOAD_MAX_PIXELS: raw })).toThrow(
        `DOGBREED_UPLOAD_MAX_PIXELS must be a positive whole number, got ${JSON.stringify(raw)}: fix the function's environment`,
      );
    });
  });

  it('ignores other suffixes, other prefixes, removals and S3’s test event, writing nothing', async () => {
    const before = await keysUnder(store, 'predictions/');
    await put('uploads/readme.txt', 'notes');
    await store.put('elsewhere/dog.jpg', samples[0]!.data);
    const summary = await invoke(
      event(
        record('uploads/readme.txt', 5),
        record('elsewhere/dog.jpg', samples[0]!.data.length),
        record('predictions/dog.jpg.json', 10),
        record('uploads/dog.jpg', 0, 'ObjectRemoved:Delete'),
      ),
    );
    expect(summary).toEqual({ processed: 0, succeeded: 0, failed: 0, ignored: 4, keys: [] });
    expect(await invoke({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: LOCAL_BUCKET })).toMatchObject(
      {
        processed: 0,
      },
    );
    expect(await keysUnder(store, 'predictions/')).toEqual(before);
    await expect(invoke({ detail: 'not an S3 event' })).rejects.toThrow(
      new InputError('event.Records must be an array of S3 records, got nothing'),
    );
  });

  it('handles a multi-record event record by record: one bad upload does not lose the others', async () => {
    const good = ['uploads/batch/a.jpg', 'uploads/batch/c.png'];
    const pngBytes = await sharp(samples[1]!.data).png().toBuffer();
    const sizes = [
      await put(good[0]!, samples[0]!.data),
      await put('uploads/batch/b.jpg', 'garbage'),
      await put(good[1]!, pngBytes),
    ];
    const summary = await invoke(
      event(
        record('uploads/batch/a.jpg', sizes[0]!),
        record('uploads/batch/b.jpg', sizes[1]!),
        record('uploads/batch/notes.txt', 3),
        record('uploads/batch/c.png', sizes[2]!, 'ObjectCreated:CompleteMultipartUpload'),
      ),
    );
    expect(summary).toEqual({
      processed: 3,
      succeeded: 2,
      failed: 1,
      ignored: 1,
      keys: ['predictions/batch/a.jpg.json', 'predictions/batch/b.jpg.json', 'predictions/batch/c.png.json'],
    });
    expect((await prediction<UploadPrediction>('uploads/batch/a.jpg')).top5[0]?.class).toBe(
      samples[0]!.class,
    );
    expect((await prediction<UploadPrediction>('uploads/batch/c.png')).image?.format).toBe('png');
    expect((await prediction<UploadFailure>('uploads/batch/b.jpg')).error.code).toBe('NotAnImage');
  });

  it('re-reads the champion pointer on every upload: a newly promoted run serves the next one', async () => {
    const promoted: Champion = { ...champion, runId: 'champ-2', promotedAt: new Date().toISOString() };
    await store.putJson('models/current.json', promoted);
    try {
      await upload('uploads/after-promotion.jpg', samples[0]!.data);
      expect((await prediction<UploadPrediction>('uploads/after-promotion.jpg')).model.runId).toBe('champ-2');
    } finally {
      await store.putJson('models/current.json', champion);
    }
  });

  it('an S3 outage throws TransientError, so Lambda retries the event', async () => {
    const restore = useLocalS3('http://127.0.0.1:1', LOCAL_BUCKET);
    try {
      await expect(invoke(event(record('uploads/outage.jpg', 100)))).rejects.toBeInstanceOf(TransientError);
    } finally {
      restore();
    }
  }, 30_000);

  it('never writes under uploads/: only what was uploaded is there', async () => {
    expect(await keysUnder(store, 'uploads/')).toEqual([...uploaded].sort());
  });

  it('on the embedded default, an object put into uploads/ is classified through the attached trigger', async () => {
    const trigger = attachUploadTrigger(s3);
    try {
      const key = 'uploads/via trigger/hund ü+1.jpg';
      const client = createS3Client({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint });
      await client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: key, Body: samples[2]!.data }));
      // a second put of the same key waits for the first invocation
      await client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: key, Body: samples[2]!.data }));
      await client.send(
        new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: 'uploads/via trigger/x.txt', Body: 'x' }),
      );
      uploaded.add(key);
      uploaded.add('uploads/via trigger/x.txt');
      await trigger.idle();
      const doc = await prediction<UploadPrediction>(key);
      expect(doc.key).toBe(key);
      expect(doc.top5[0]?.class).toBe(samples[2]!.class);
      expect(await store.head('predictions/via trigger/x.txt.json')).toBeUndefined();
    } finally {
      trigger.detach();
    }
    // detached: nothing answers any more
    await store.put('uploads/after-detach.jpg', samples[0]!.data);
    uploaded.add('uploads/after-detach.jpg');
    await sleep(300);
    expect(await store.head('predictions/after-detach.jpg.json')).toBeUndefined();
  });
});

describe('without a usable champion', () => {
  it('no champion yet: the error says to run `dogbreed run` first', async () => {
    const t = await startTestS3(LOCAL_BUCKET);
    const restore = useLocalS3(t.s3.endpoint, LOCAL_BUCKET);
    try {
      await t.store.put('uploads/dog.jpg', samples[0]!.data);
      const summary = await invoke(event(record('uploads/dog.jpg', samples[0]!.data.length)));
      expect(summary).toMatchObject({ processed: 1, failed: 1 });
      const doc = await t.store.getJson<UploadFailure>('predictions/dog.jpg.json');
      expect(doc.error).toMatchObject({ code: 'NoChampion' });
      expect(doc.error.message).toMatch(/no champion model yet.*run `dogbreed run` first/);
      // a champion whose model is gone is reported too
      await t.store.putJson('models/current.json', { ...champion, modelKey: 'runs/gone/model/model.onnx' });
      await invoke(event(record('uploads/dog.jpg', samples[0]!.data.length)));
      const again = await t.store.getJson<UploadFailure>('predictions/dog.jpg.json');
      expect(again.error.code).toBe('ModelUnavailable');
      expect(again.error.message).toMatch(/champion model of run champ cannot be used.*run `dogbreed run`/);
      expect(await t.keys('uploads/')).toEqual(['uploads/dog.jpg']);
    } finally {
      restore();
      await t.close();
    }
  });
});

describe('dogbreed classify', () => {
  let ws: string;
  let files: string[];

  beforeAll(async () => {
    // A copy of the trained workspace: the command starts its own server on it.
    ws = await mkdtemp(join(tmpdir(), 'dogbreed-classify-cli-'));
    await cp(join(workspace, 's3'), join(ws, 's3'), { recursive: true });
    files = [];
    for (const [i, s] of samples.slice(0, 2).entries()) {
      const file = join(ws, `photo-${i}.jpg`);
      await writeFile(file, s.data);
      files.push(file);
    }
  });
  afterAll(() => rm(ws, { recursive: true, force: true }));

  it('uploads images, waits for their predictions and prints a table per image', async () => {
    const lines: string[] = [];
    const code = await classifyCommand([...files, '--workspace', ws], (l) => lines.push(l));
    expect(code, lines.join('\n')).toBe(0);
    const text = lines.join('\n');
    for (const [i, s] of samples.slice(0, 2).entries()) {
      expect(text).toContain(`photo-${i}.jpg: ${parseClassName(s.class).breed} (`);
    }
    expect(text).toMatch(/breed\s+probability/);
    expect(text).toContain('model of run champ');
    expect(text).toContain('s3://dogbreed-local/predictions/photo-0.jpg.json');
  });

  it('--json: one document; the same file again goes to a fresh key, not the old prediction', async () => {
    const lines: string[] = [];
    const code = await classifyCommand([files[0]!, files[0]!, '--json', '--workspace', ws], (l) =>
      lines.push(l),
    );
    expect(code).toBe(0);
    const out = JSON.parse(lines.join('\n')) as {
      upload: string;
      prediction: string;
      result: UploadPrediction;
    }[];
    expect(out.map((o) => o.upload)).toEqual(['uploads/photo-0-2.jpg', 'uploads/photo-0-3.jpg']);
    expect(out.map((o) => o.result.key)).toEqual(['uploads/photo-0-2.jpg', 'uploads/photo-0-3.jpg']);
    expect(out[0]!.result.top5[0]?.class).toBe(samples[0]!.class);
  });

  it('an upload that is not an image prints the error and exits 1', async () => {
    const bad = join(ws, 'broken.jpg');
    await writeFile(bad, 'not really a jpeg');
    const lines: string[] = [];
    expect(await classifyCommand([bad, '--workspace', ws], (l) => lines.push(l))).toBe(1);
    expect(lines.join('\n')).toMatch(/broken\.jpg: NotAnImage: uploads\/broken\.jpg: not an image/);
  });

  it('a prediction that does not come in time says what was uploaded and where to look', async () => {
    const lines: string[] = [];
    const code = await classifyCommand(
      [files[1]!, '--timeout', '0.3', '--workspace', ws],
      (l) => lines.push(l),
      {
        trigger: false,
      },
    );
    expect(code).toBe(1);
    expect(lines.join('\n')).toMatch(
      /photo-1\.jpg: no prediction after 0\.3 s\. Uploaded to s3:\/\/dogbreed-local\/uploads\/photo-1-2\.jpg; the prediction would appear at s3:\/\/dogbreed-local\/predictions\/photo-1-2\.jpg\.json/,
    );
  });

  it('usage errors: no image, a non-image file name, an unreadable file, a bad --timeout', async () => {
    const out = () => undefined;
    await expect(classifyCommand(['--workspace', ws], out)).rejects.toThrow(/give one or more images/);
    await expect(classifyCommand([join(ws, 'notes.txt')], out)).rejects.toThrow(
      /only \.jpg, \.jpeg, \.png and \.webp/,
    );
    await expect(classifyCommand([join(ws, 'missing.jpg')], out)).rejects.toThrow(
      /cannot read .*missing\.jpg/,
    );
    await expect(classifyCommand([files[0]!, '--timeout', 'soon'], out)).rejects.toThrow(/--timeout must be/);
  });
});

describeShared('upload classification of real Stanford Dogs photos', () => {
  let realWs: string;
  let s3: LocalS3;
  let store: S3ObjectStore;
  let restoreEnv: () => void;

  beforeAll(async () => {
    realWs = await mkdtemp(join(tmpdir(), 'dogbreed-classify-real-'));
    const run = await runLocalPipeline({
      workspace: realWs,
      config: {
        source: SHARED_SAMPLE_DIR,
        seed: 11,
        shardSize: 400,
        training: { backbone: SHARED_BACKBONE, views: 0 },
      },
      runId: 'real-champ',
    });
    expect(run.status, `${run.error}: ${run.cause}`).toBe('SUCCEEDED');
    s3 = await startLocalS3({ directory: join(realWs, 's3'), bucket: LOCAL_BUCKET });
    store = openStore({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint });
    restoreEnv = useLocalS3(s3.endpoint, s3.bucket);
  }, 600_000);
  afterAll(async () => {
    restoreEnv?.();
    await s3?.close();
    await rm(realWs, { recursive: true, force: true });
  });

  it('puts the true breed in the top 5 for at least 8 of 10 held-out photos', async () => {
    expect((await store.getJson<Champion>('models/current.json')).runId).toBe('real-champ');
    const rows = parseJsonl(
      await store.getText('runs/real-champ/manifests/test.jsonl'),
      'test',
      ManifestRowSchema,
    );
    // 10 photos of 10 different breeds, spread over the split
    const picked = Array.from({ length: 10 }, (_, i) => rows[Math.floor((i * rows.length) / 10)]!);
    const records: S3EventRecord[] = [];
    for (const row of picked) {
      const key = `uploads/real/${row.member}`;
      const data = await readFile(join(SHARED_SAMPLE_DIR, row.member));
      await store.put(key, data);
      records.push(record(encodeEventKey(key), data.length));
    }
    const summary = await invoke(event(...records));
    expect(summary).toMatchObject({ processed: 10, succeeded: 10, failed: 0 });
    let hits = 0;
    for (const row of picked) {
      const doc = await store.getJson<UploadPrediction>(`predictions/real/${row.member}.json`);
      expect(doc.top5).toHaveLength(5);
      expect(doc.model.runId).toBe('real-champ');
      if (doc.top5.some((t) => t.class === row.class)) hits++;
    }
    expect(hits).toBeGreaterThanOrEqual(8);
  });
});

async function keysUnder(store: S3ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.key);
  return out.sort();
}

describe('the S3 event schema (uploadRecords)', () => {
  const s3 = (key: unknown, bucket: unknown = 'b') => ({
    bucket: { name: bucket },
    object: { key, size: 3 },
  });

  it('keeps ObjectCreated image uploads, keys decoded, and counts the rest as ignored', () => {
    expect(
      uploadRecords({
        Records: [
          { eventName: 'ObjectCreated:Put', s3: s3('uploads/my+dog%C3%A9.jpg') },
          { eventName: 'ObjectRemoved:Delete', s3: s3('uploads/old.jpg') },
          { eventName: 'ObjectCreated:Put', s3: s3('uploads/bad%E0.jpg') },
        ],
      }),
    ).toEqual({ uploads: [{ bucket: 'b', key: 'uploads/my dogé.jpg', size: 3 }], ignored: 2 });
    expect(uploadRecords({ Event: 's3:TestEvent' })).toEqual({ uploads: [], ignored: 0 });
  });

  it.each<[string, unknown, string]>([
    ['not an object', 'hello', 'event must be an object, got "hello"'],
    ['Records not a list', { Records: {} }, 'event.Records must be an array, got {}'],
    [
      'a record without its event name',
      { Records: [{ s3: s3('uploads/a.jpg') }] },
      'event.Records[0].eventName must be a non-empty string, got nothing',
    ],
    [
      'a record without a bucket name',
      { Records: [{ eventName: 'ObjectCreated:Put', s3: s3('uploads/a.jpg', '') }] },
      'event.Records[0].s3.bucket.name must be a non-empty string, got ""',
    ],
    [
      'an object key that is not a string',
      { Records: [{ eventName: 'ObjectCreated:Put', s3: s3(7) }] },
      'event.Records[0].s3.object.key must be a non-empty string, got 7',
    ],
  ])('refuses %s, naming the field', (_, event, message) => {
    expect(() => uploadRecords(event)).toThrow(new InputError(message));
  });
});
