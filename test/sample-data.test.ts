import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleTarball } from '../src/dataset/sample-data.ts';
import { STANFORD_DOGS_CLASSES } from '../src/dataset/stanford-dogs-classes.ts';
import { InputError } from '../src/errors.ts';
import { hasShared, SHARED_SAMPLE_DIR } from './helpers/shared.ts';

interface Member {
  name: string;
  data: Buffer;
}

/** Minimal ustar reader for the test (regular files only; the sample never needs PAX names). */
function readTar(tar: Buffer): Member[] {
  const members: Member[] = [];
  let pos = 0;
  while (pos + 512 <= tar.length) {
    const header = tar.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      header.toString('latin1', start, start + length).replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const size = Number.parseInt(field(124, 12).trim(), 8);
    expect(field(156, 1)).toBe('0');
    members.push({ name, data: tar.subarray(pos + 512, pos + 512 + size) });
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return members;
}

/** 8×8 RGB thumbnail as a 192-dimensional vector. */
async function thumbnail(jpeg: Buffer): Promise<number[]> {
  return [...(await sharp(jpeg).resize(8, 8, { fit: 'fill' }).raw().toBuffer())];
}

function distance2(a: number[], b: number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
  return sum;
}

const MEMBER = /^Images\/(n\d{8})-([^/]+)\/\1_(\d+)\.jpg$/;
const classOf = (member: string) => member.split('/')[1]!;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sample-data-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('STANFORD_DOGS_CLASSES', () => {
  it('lists the 120 real wnid-breed folders, sorted and unique', () => {
    expect(STANFORD_DOGS_CLASSES).toHaveLength(120);
    expect([...STANFORD_DOGS_CLASSES].sort()).toEqual(STANFORD_DOGS_CLASSES);
    expect(new Set(STANFORD_DOGS_CLASSES).size).toBe(120);
    for (const c of STANFORD_DOGS_CLASSES) expect(c).toMatch(/^n\d{8}-[A-Za-z_'-]+$/);
    expect(STANFORD_DOGS_CLASSES[0]).toBe('n02085620-Chihuahua');
    expect(STANFORD_DOGS_CLASSES[119]).toBe('n02116738-African_hunting_dog');
  });

  it.skipIf(!hasShared)('matches the folder names of the real Stanford Dogs sample', () => {
    expect(readdirSync(SHARED_SAMPLE_DIR).sort()).toEqual(STANFORD_DOGS_CLASSES);
  });
});

describe('writeSampleTarball', () => {
  let members: Member[];
  let result: Awaited<ReturnType<typeof writeSampleTarball>>;
  const progress: Array<[number, number]> = [];

  beforeAll(async () => {
    const out = join(dir, 'main', 'images.tar');
    result = await writeSampleTarball(out, {
      classes: 10,
      perClass: 30,
      seed: 7,
      onProgress: (done, total) => progress.push([done, total]),
    });
    members = readTar(await readFile(out));
  });

  it('writes the Stanford Dogs layout with real class folders and the requested counts', async () => {
    const expected = STANFORD_DOGS_CLASSES.slice(0, 10);
    expect(result).toMatchObject({ path: join(dir, 'main', 'images.tar'), images: 300, classes: expected });
    expect(result.bytes).toBe((await stat(result.path)).size);
    expect(members).toHaveLength(300);
    const perClass = new Map<string, number>();
    for (const m of members) {
      const match = MEMBER.exec(m.name);
      expect(match, m.name).not.toBeNull();
      perClass.set(classOf(m.name), (perClass.get(classOf(m.name)) ?? 0) + 1);
    }
    expect([...perClass.keys()].sort()).toEqual(expected);
    for (const n of perClass.values()) expect(n).toBe(30);
    expect(new Set(members.map((m) => m.name)).size).toBe(300);
    expect(members[0]!.name).toBe('Images/n02085620-Chihuahua/n02085620_1.jpg');
  });

  it('leaves only the finished tarball, no .partial', async () => {
    expect(await readdir(join(dir, 'main'))).toEqual(['images.tar']);
  });

  it('reports progress for every image, ending at the total', () => {
    expect(progress).toHaveLength(300);
    expect(progress.map(([done]) => done)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(progress.every(([, total]) => total === 300)).toBe(true);
  });

  it('writes valid 3-channel JPEGs of varied size and aspect within 160..480 px', async () => {
    const dims = await Promise.all(members.map((m) => sharp(m.data).metadata()));
    for (const d of dims) {
      expect([d.format, d.channels, d.space]).toEqual(['jpeg', 3, 'srgb']);
      for (const side of [d.width, d.height]) {
        expect(side).toBeGreaterThanOrEqual(160);
        expect(side).toBeLessThanOrEqual(480);
      }
    }
    expect(new Set(dims.map((d) => `${d.width}x${d.height}`)).size).toBeGreaterThan(250);
    const aspects = dims.map((d) => d.width / d.height);
    expect(aspects.filter((a) => a > 1.2).length).toBeGreaterThan(50);
    expect(aspects.filter((a) => a < 1 / 1.2).length).toBeGreaterThan(50);
  });

  it('makes classes separable by a nearest-centroid classifier on 8×8 thumbnails', async () => {
    const byClass = new Map<string, number[][]>();
    for (const m of members) {
      const list = byClass.get(classOf(m.name)) ?? [];
      list.push(await thumbnail(m.data));
      byClass.set(classOf(m.name), list);
    }
    // First 20 images of each class train, the other 10 are held out.
    const centroids = [...byClass].map(([name, thumbs]) => {
      const train = thumbs.slice(0, 20);
      return { name, mean: train[0]!.map((_, i) => train.reduce((s, t) => s + t[i]!, 0) / train.length) };
    });
    let correct = 0;
    let tested = 0;
    for (const [name, thumbs] of byClass) {
      for (const t of thumbs.slice(20)) {
        const best = centroids.reduce((a, b) => (distance2(t, a.mean) <= distance2(t, b.mean) ? a : b));
        if (best.name === name) correct++;
        tested++;
      }
    }
    expect(tested).toBe(100);
    expect(correct / tested).toBeGreaterThanOrEqual(0.9);
  });

  it('varies images within a class', async () => {
    for (const folder of STANFORD_DOGS_CLASSES.slice(0, 10)) {
      const ofClass = members.filter((m) => classOf(m.name) === folder);
      expect(new Set(ofClass.map((m) => m.data.toString('base64'))).size).toBe(30);
      const [a, b] = await Promise.all(ofClass.slice(0, 2).map((m) => thumbnail(m.data)));
      expect(Math.sqrt(distance2(a!, b!) / a!.length)).toBeGreaterThan(2);
    }
  });
});

describe('writeSampleTarball determinism and failures', () => {
  const opts = { classes: 3, perClass: 4, seed: 11 };

  it('gives byte-identical tarballs for the same options and different ones for another seed', async () => {
    const a = await writeSampleTarball(join(dir, 'a.tar'), opts);
    const b = await writeSampleTarball(join(dir, 'b.tar'), opts);
    const c = await writeSampleTarball(join(dir, 'c.tar'), { ...opts, seed: 12 });
    const [ba, bb, bc] = await Promise.all([a, b, c].map((r) => readFile(r.path)));
    expect(ba!.equals(bb!)).toBe(true);
    expect(ba!.equals(bc!)).toBe(false);
    expect(readTar(bc!).map((m) => m.name)).toEqual(readTar(ba!).map((m) => m.name));
  });

  it.each([
    [{ classes: 1 }, 'classes must be an integer from 2 to 120, got 1'],
    [{ classes: 121 }, 'classes must be an integer from 2 to 120, got 121'],
    [{ classes: 2.5 }, 'classes must be an integer from 2 to 120, got 2.5'],
    [{ classes: Number.NaN }, 'classes must be an integer from 2 to 120, got NaN'],
    [{ perClass: 2 }, 'perClass must be an integer from 3 to 10000, got 2'],
    [{ perClass: 10_001 }, 'perClass must be an integer from 3 to 10000, got 10001'],
    [{ seed: 1.5 }, 'seed must be an integer from 0 to 4294967295, got 1.5'],
  ])('rejects %o as InputError', async (bad, message) => {
    const out = join(dir, 'bad.tar');
    const err = await writeSampleTarball(out, { ...opts, ...bad }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toBe(message);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
  });

  it('leaves neither the tarball nor a .partial when generation fails midway', async () => {
    const out = join(dir, 'broken', 'images.tar');
    const failing = writeSampleTarball(out, {
      ...opts,
      onProgress: (done) => {
        if (done === 5) throw new Error('disk on fire');
      },
    });
    await expect(failing).rejects.toThrow('disk on fire');
    expect(await readdir(join(dir, 'broken'))).toEqual([]);
  });
});
