import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import { startTestS3, type TestS3 } from './helpers/local-s3.ts';

// The serving code keeps models in /tmp by checksum across warm invocations. Lambda's /tmp is
// 512 MB and an ensemble about 50 MB: a container that sees many models keeps only the newest
// MAX_LOADED there, so a long-lived container never runs out of /tmp.

let s3: TestS3;
let tmp: string;
const savedTmp = process.env.TMPDIR;

beforeAll(async () => {
  s3 = await startTestS3();
  // A /tmp of this file's own: the serving module reads it when first imported, so it and
  // what imports it are imported in the test, after this.
  tmp = await mkdtemp(join(tmpdir(), 'serving-cache-'));
  process.env.TMPDIR = tmp;
});

afterAll(async () => {
  process.env.TMPDIR = savedTmp;
  await s3?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

it('keeps only the newest MAX_LOADED models in /tmp, each whole and named by its sha256', async () => {
  const { loadServingModel, MAX_LOADED } = await import('../src/model/serving-model.ts');
  const { buildServingModel } = await import('../scripts/serving-memory.ts');
  const backbone = join(tmp, 'tiny.onnx');
  await writeFile(backbone, buildTinyBackbone());
  const shas: string[] = [];
  // Models that differ (in class count), so each has its own checksum, as champions do.
  for (let i = 0; i < MAX_LOADED + 2; i++) {
    const bytes = await buildServingModel([backbone], { classes: 2 + i });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    shas.push(sha256);
    await s3.store.put(`models/m${i}.onnx`, Buffer.from(bytes), { metadata: { sha256 } });
    const model = await loadServingModel(s3.store, `models/m${i}.onnx`);
    expect(model.sha256).toBe(sha256);
  }
  const cached = (await readdir(join(tmp, 'dogbreed-models'))).sort();
  expect(cached).toEqual(
    shas
      .slice(-MAX_LOADED)
      .map((s) => `${s}.onnx`)
      .sort(),
  );
});
