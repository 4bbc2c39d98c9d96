import { existsSync } from 'node:fs';
import { cp, mkdir, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Context, S3Event } from 'aws-lambda';
import { DEFAULTS } from '../src/config.ts';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { preprocessImage } from '../src/imaging/preprocess-image.ts';
import { LOCAL_BUCKET, runLocalPipeline, useLocalS3 } from '../src/local/pipeline.ts';
import { startLocalS3 } from '../src/local/s3-server.ts';
import { encodeEventKey } from '../src/local/upload-trigger.ts';
import { evalView } from '../src/model/image-tensor.ts';
import { loadServingModel } from '../src/model/serving-model.ts';
import {
  classifyUpload,
  type PredictionDocument,
  uploadLimitsFromEnv,
} from '../src/stages/classify-upload.ts';
import type { Champion } from '../src/stages/write-report.ts';
import { createS3Client, S3ObjectStore } from '../src/storage/s3-store.ts';
import { makeJpegs } from './images.ts';
import { SHARED_SAMPLE_DIR, TSNODE } from './paths.ts';
import { progress, round, runChecked } from './util.ts';

// Upload classification latency: the handler core (GET the upload, champion pointer and model
// checks, preprocess, run, PUT the prediction) against the bare work on the same images in the
// same process (decode + preprocess + session.run, bytes already in memory), taking turns image
// by image. Cold start is a fresh child process (empty /tmp, so the model comes from S3).

const GOAL_RATIO = 1.2;
const MOBILENET = resolve(SHARED_SAMPLE_DIR, '../../models/mobilenetv2-12-int8/mobilenetv2-12-int8.onnx');
const SELF = fileURLToPath(import.meta.url);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A champion in `workspace`: MobileNetV2 on a few real breeds when ../shared is there, else the tiny backbone. */
async function trainChampion(dir: string, workspace: string, quick: boolean) {
  const real = existsSync(MOBILENET);
  let source: string;
  if (real) {
    source = join(dir, 'photos');
    const breeds = (await readdir(SHARED_SAMPLE_DIR)).sort().slice(0, quick ? 4 : 12);
    for (const b of breeds) {
      await mkdir(join(source, b), { recursive: true });
      await cp(join(SHARED_SAMPLE_DIR, b), join(source, b), { recursive: true });
    }
  } else {
    source = join(dir, 'sample.tar');
    await writeSampleTarball(source, { classes: 4, perClass: 12, seed: 7 });
  }
  const run = await runLocalPipeline({
    workspace,
    config: {
      source,
      shardSize: real ? 400 : 10,
      ...(real ? { training: { backbone: MOBILENET, views: 0 } } : { resizeShorter: 64 }),
    },
    runId: 'bench-classify',
  });
  if (run.status !== 'SUCCEEDED' || !run.metrics?.promotion.promoted) {
    throw new Error(`the champion run did not succeed and promote: ${run.error ?? ''} ${run.cause ?? ''}`);
  }
  return { backbone: real ? 'mobilenetv2-12-int8' : 'tiny', classes: run.metrics.counts.classes };
}

const context = { getRemainingTimeInMillis: () => 60_000 } as unknown as Context;

/** Child mode: one fresh process, the handler's first and second invocation. */
async function coldChild(key: string, size: number): Promise<void> {
  const { handler } = await import('../functions/classify-upload.ts');
  const event = (k: string) =>
    ({
      Records: [
        { eventName: 'ObjectCreated:Put', s3: { bucket: { name: LOCAL_BUCKET }, object: { key: k, size } } },
      ],
    }) as unknown as S3Event;
  const t0 = performance.now();
  await handler(event(encodeEventKey(key)), context);
  const first = performance.now() - t0;
  const t1 = performance.now();
  await handler(event(encodeEventKey(key)), context);
  const second = performance.now() - t1;
  // performance.now() counts from process start: runtime start-up and imports included.
  process.stdout.write(
    `${JSON.stringify({ firstMs: first, secondMs: second, processStartToFirstResultMs: t0 + first })}\n`,
  );
}

export async function benchClassify(dir: string, quick: boolean): Promise<Record<string, unknown>> {
  const workspace = join(dir, 'ws');
  progress('classify: training a champion');
  const champion = await trainChampion(dir, workspace, quick);
  const s3 = await startLocalS3({ directory: join(workspace, 's3'), bucket: LOCAL_BUCKET });
  const restoreEnv = useLocalS3(s3.endpoint, s3.bucket);
  try {
    const store = new S3ObjectStore(
      createS3Client({ bucket: LOCAL_BUCKET, endpoint: s3.endpoint }),
      LOCAL_BUCKET,
    );
    const count = quick ? 20 : 100;
    // Stanford Dogs' typical photo size.
    const images = await makeJpegs(count, () => ({ width: 500, height: 375 }));
    const keys = images.map((_, i) => `uploads/bench/photo ${i}.jpg`);
    for (const [i, key] of keys.entries()) await store.put(key, images[i]!);

    progress('classify: cold start in a fresh process');
    const cold = JSON.parse(
      (
        await runChecked(
          process.execPath,
          [TSNODE, SELF, '--cold-child', keys[0]!, String(images[0]!.length)],
          {
            env: { ...process.env, TMPDIR: join(dir, 'cold-tmp') },
          },
        )
      )
        .trim()
        .split('\n')
        .at(-1)!,
    ) as { firstMs: number; secondMs: number; processStartToFirstResultMs: number };

    const limits = uploadLimitsFromEnv();
    const pointer = await store.getJson<Champion>('models/current.json');
    const model = await loadServingModel(store, pointer.modelKey);
    const trained = model.meta.provenance.shardShorterSide;
    const resizeShorter = typeof trained === 'number' ? trained : DEFAULTS.resizeShorter;
    const bare = async (bytes: Buffer, name: string) => {
      const pre = await preprocessImage(bytes, { resizeShorter, maxPixels: limits.maxPixels, name });
      await model.runner.run([await evalView(pre.jpeg, model.meta.preprocess, name)]);
    };
    const core = async (i: number) => {
      const doc: PredictionDocument = await classifyUpload(
        store,
        { key: keys[i]!, size: images[i]!.length },
        limits,
      );
      if ('error' in doc) throw new Error(`${keys[i]}: ${doc.error.message}`);
    };
    // Warm-up: the first calls of each path (sharp, onnxruntime, sockets) are not the steady state.
    for (let i = 0; i < Math.min(5, count); i++) {
      await core(i);
      await bare(images[i]!, keys[i]!);
    }
    progress(`classify: ${count} images, handler core and bare work taking turns`);
    const coreMs: number[] = [];
    const bareMs: number[] = [];
    for (let i = 0; i < count; i++) {
      // Alternating which goes first, so neither always finds the caches the other warmed.
      const order = i % 2 === 0 ? ['core', 'bare'] : ['bare', 'core'];
      for (const which of order) {
        const t = performance.now();
        if (which === 'core') await core(i);
        else await bare(images[i]!, keys[i]!);
        (which === 'core' ? coreMs : bareMs).push(performance.now() - t);
      }
    }
    const stats = (ms: number[]) => ({
      p50Ms: round(percentile(ms, 50), 2),
      p95Ms: round(percentile(ms, 95), 2),
    });
    const ratioP50 = percentile(coreMs, 50) / percentile(bareMs, 50);
    return {
      model: {
        ...champion,
        provider: model.runner.provider,
        resizeShorter,
        cropSize: model.meta.preprocess.cropSize,
      },
      images: {
        count,
        width: 500,
        height: 375,
        meanBytes: Math.round(images.reduce((a, b) => a + b.length, 0) / count),
      },
      handlerCore: stats(coreMs),
      bareWork: stats(bareMs),
      ratioP50: round(ratioP50),
      ratioP95: round(percentile(coreMs, 95) / percentile(bareMs, 95)),
      goalRatio: GOAL_RATIO,
      goalMet: ratioP50 <= GOAL_RATIO,
      coldStart: {
        firstInvocationMs: round(cold.firstMs, 1),
        secondInvocationMs: round(cold.secondMs, 1),
        processStartToFirstResultMs: round(cold.processStartToFirstResultMs, 1),
      },
    };
  } finally {
    restoreEnv();
    await s3.close();
  }
}

if (process.argv[1] === SELF && process.argv[2] === '--cold-child') {
  await coldChild(process.argv[3]!, Number(process.argv[4]));
}
