import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DatasetIndexer } from '../src/dataset/indexer.ts';
import { PROFILES, parseClassName, resolveProfile } from '../src/dataset/profiles.ts';
import { STANFORD_DOGS_CLASSES } from '../src/dataset/stanford-dogs-classes.ts';
import { readTar } from '../src/dataset/tar-reader.ts';
import { END_OF_ARCHIVE, packTar, pad, type TarFile, tarHeader } from '../src/dataset/tar-writer.ts';
import { DataError } from '../src/errors.ts';
import type { DatasetProfile } from '../src/types.ts';

const canvas = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#804020' } });
const jpeg = await canvas(40, 30).jpeg().toBuffer();
const jpegSmall = await canvas(8, 6).jpeg().toBuffer();
const png = await canvas(20, 10).png().toBuffer();
const webp = await canvas(12, 9).webp().toBuffer();

async function index(tar: Buffer): Promise<DatasetIndexer> {
  const indexer = new DatasetIndexer();
  async function* source() {
    for (let i = 0; i < tar.length; i += 1000) yield tar.subarray(i, i + 1000);
  }
  for await (const entry of readTar(source())) indexer.add(entry);
  return indexer;
}

const classFiles = (classes: readonly string[], perClass: number): TarFile[] =>
  classes.flatMap((c) =>
    Array.from({ length: perClass }, (_, i) => ({ name: `Images/${c}/${i}.jpg`, data: jpegSmall })),
  );

/** A profile that accepts anything, to look at rows and lists. */
const lenient: DatasetProfile = { name: 'imagefolder', minClasses: 1, minPerClass: 1, maxInvalidShare: 1 };

function finishError(indexer: DatasetIndexer, profile: DatasetProfile): Error {
  try {
    indexer.finish(profile);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected finish to fail');
}

describe('DatasetIndexer', () => {
  it('indexes valid images in tar order with exact offsets, sizes and dimensions', async () => {
    const tar = packTar([
      { name: 'Images/n02085620-Chihuahua/n02085620_1.jpg', data: jpeg },
      { name: 'Images/n02085620-Chihuahua/n02085620_2.JPEG', data: jpegSmall },
      { name: 'Images/n02085782-Japanese_spaniel/p.png', data: png },
      { name: 'Images/n02085782-Japanese_spaniel/w.webp', data: webp },
    ]);
    const result = (await index(tar)).finish(lenient);
    expect(result.rows.map(({ offset: _, ...r }) => r)).toEqual([
      {
        id: 'n02085620_1',
        class: 'n02085620-Chihuahua',
        member: 'Images/n02085620-Chihuahua/n02085620_1.jpg',
        size: jpeg.length,
        width: 40,
        height: 30,
        format: 'jpeg',
      },
      {
        id: 'n02085620_2',
        class: 'n02085620-Chihuahua',
        member: 'Images/n02085620-Chihuahua/n02085620_2.JPEG',
        size: jpegSmall.length,
        width: 8,
        height: 6,
        format: 'jpeg',
      },
      {
        id: 'p',
        class: 'n02085782-Japanese_spaniel',
        member: 'Images/n02085782-Japanese_spaniel/p.png',
        size: png.length,
        width: 20,
        height: 10,
        format: 'png',
      },
      {
        id: 'w',
        class: 'n02085782-Japanese_spaniel',
        member: 'Images/n02085782-Japanese_spaniel/w.webp',
        size: webp.length,
        width: 12,
        height: 9,
        format: 'webp',
      },
    ]);
    for (const [row, data] of result.rows.map((r, i) => [r, [jpeg, jpegSmall, png, webp][i]!] as const))
      expect(tar.subarray(row.offset, row.offset + row.size)).toEqual(data);
    expect(result.perClass).toEqual({ 'n02085620-Chihuahua': 2, 'n02085782-Japanese_spaniel': 2 });
    expect(result).toMatchObject({ images: 4, classes: 2, invalid: [], warnings: [] });
  });

  it('rejects unsafe paths, links and devices without following them', async () => {
    const tar = Buffer.concat([
      tarHeader({ name: '../x.jpg', size: jpeg.length }),
      pad(jpeg),
      tarHeader({ name: 'a/../../x.jpg', size: jpeg.length }),
      pad(jpeg),
      tarHeader({ name: 'a\\..\\..\\x.jpg', size: jpeg.length }),
      pad(jpeg),
      tarHeader({ name: '/etc/cls/x.jpg', size: jpeg.length }),
      pad(jpeg),
      tarHeader({ name: 'C:/cls/x.jpg', size: jpeg.length }),
      pad(jpeg),
      tarHeader({ name: 'cls/link.jpg', type: 'symlink', linkname: '/etc/passwd' }),
      tarHeader({ name: 'cls/hard.jpg', type: 'hardlink', linkname: 'cls/ok.jpg' }),
      tarHeader({ name: 'cls/tty', type: 'chardev' }),
      tarHeader({ name: 'cls/pipe', type: 'fifo' }),
      tarHeader({ name: 'cls/', type: 'dir' }),
      tarHeader({ name: 'cls/ok.jpg', size: jpeg.length }),
      pad(jpeg),
      END_OF_ARCHIVE,
    ]);
    const result = (await index(tar)).finish(lenient);
    const dots = "unsafe path: contains a '..' component";
    const absolute = 'unsafe path: absolute (members must be relative paths)';
    const never = 'only regular files are indexed, links are never followed';
    expect(result.invalid).toEqual([
      { member: '../x.jpg', reason: dots },
      { member: 'a/../../x.jpg', reason: dots },
      { member: 'a\\..\\..\\x.jpg', reason: dots },
      { member: '/etc/cls/x.jpg', reason: absolute },
      { member: 'C:/cls/x.jpg', reason: absolute },
      { member: 'cls/link.jpg', reason: `symbolic link to "/etc/passwd"; ${never}` },
      { member: 'cls/hard.jpg', reason: `hard link to "cls/ok.jpg"; ${never}` },
      { member: 'cls/tty', reason: `character device; ${never}` },
      { member: 'cls/pipe', reason: `FIFO (named pipe); ${never}` },
    ]);
    expect(result.rows.map((r) => r.member)).toEqual(['cls/ok.jpg']);
  });

  it('lists broken images by name with the reason, skips files that are not images, and accepts misnamed images with a warning', async () => {
    const files: TarFile[] = [
      { name: 'top.jpg', data: jpeg },
      { name: 'cls/README.txt', data: Buffer.from('hello') },
      { name: 'cls/.DS_Store', data: Buffer.from([0, 0, 0, 1, 66, 117, 100, 49]) },
      { name: 'cls/._a.jpg', data: Buffer.from([0, 5, 22, 7, 0, 2, 0, 0]) },
      { name: 'cls/empty.jpg', data: Buffer.alloc(0) },
      { name: 'cls/text.jpg', data: Buffer.from('not really a picture') },
      { name: 'cls/cut.jpg', data: jpeg.subarray(0, jpeg.length - 10) },
      { name: 'cls/png-inside.jpg', data: png },
      { name: 'cls/a.jpg', data: Buffer.concat([jpeg, Buffer.from('trailer')]) },
    ];
    const result = (await index(packTar(files))).finish(lenient);
    expect(result.invalid).toEqual([
      { member: 'top.jpg', reason: 'not inside a class folder' },
      { member: 'cls/empty.jpg', reason: 'empty file (0 bytes)' },
      { member: 'cls/text.jpg', reason: 'not an image: looks like text ("not really a picture")' },
      { member: 'cls/cut.jpg', reason: 'truncated JPEG (no end-of-image marker)' },
    ]);
    expect(result.rows.map((r) => [r.member, r.format, r.width, r.height])).toEqual([
      ['cls/png-inside.jpg', 'png', 20, 10],
      ['cls/a.jpg', 'jpeg', 40, 30],
    ]);
    expect(result.warnings).toEqual([
      {
        member: 'cls/png-inside.jpg',
        reason: 'PNG data under a .jpg name; converted to JPEG during preprocessing',
      },
      { member: 'cls/a.jpg', reason: '7 bytes after the JPEG end marker (ignored)' },
    ]);
    expect(result.ignored).toEqual([
      { member: 'cls/README.txt', reason: 'not an image file name (.jpg, .jpeg, .png or .webp)' },
      { member: 'cls/.DS_Store', reason: 'not an image file name (.jpg, .jpeg, .png or .webp)' },
      {
        member: 'cls/._a.jpg',
        reason: 'macOS metadata file (create the tarball with COPYFILE_DISABLE=1 to leave these out)',
      },
    ]);
  });

  it('does not count stray files against --max-invalid-share: a README, .DS_Store and an Annotation/ folder pass', async () => {
    const files: TarFile[] = [
      ...classFiles(['n02085620-Chihuahua', 'n02085782-Japanese_spaniel'], 24),
      { name: 'Images/README.txt', data: Buffer.from('Stanford Dogs') },
      { name: 'Images/n02085620-Chihuahua/.DS_Store', data: Buffer.from([0, 0, 0, 1]) },
      { name: 'Annotation/whatever.xml', data: Buffer.from('<annotation/>') },
      { name: 'Annotation/n02085620-Chihuahua/n02085620_7', data: Buffer.from('<annotation/>') },
    ];
    const result = (await index(packTar(files))).finish(PROFILES.imagefolder);
    expect(result).toMatchObject({ images: 48, classes: 2, invalid: [] });
    expect(result.ignored.map((e) => e.member)).toEqual([
      'Images/README.txt',
      'Images/n02085620-Chihuahua/.DS_Store',
      'Annotation/whatever.xml',
      'Annotation/n02085620-Chihuahua/n02085620_7',
    ]);
    // A file that claims to be an image and is broken still counts: 1 of 49 is over 1%.
    files.push({ name: 'Images/n02085620-Chihuahua/broken.jpg', data: Buffer.from('x') });
    const err = finishError(await index(packTar(files)), { ...PROFILES.imagefolder, maxInvalidShare: 0.01 });
    expect(err.message).toMatch(/^1 of 49 entries \(2%\) are invalid/);
  });

  it('lists files too large to have been read', async () => {
    const indexer = new DatasetIndexer();
    const tar = packTar([{ name: 'cls/big.jpg', data: jpeg }]);
    async function* source() {
      yield tar;
    }
    for await (const e of readTar(source(), { maxEntryBytes: 100 })) indexer.add(e);
    expect(finishError(indexer, lenient).message).toContain(
      `cls/big.jpg (too large to index (${jpeg.length} bytes, over the per-image read limit))`,
    );
  });

  it('makes ids safe and unique in tar order', async () => {
    const result = (
      await index(
        packTar([
          { name: 'Images/a/dog.jpg', data: jpeg },
          { name: 'Images/b/dog.jpg', data: jpeg },
          { name: 'Images/c/dog-2.jpg', data: jpeg },
          { name: 'Images/c/dog.png', data: png },
          { name: 'Images/c/my dog.v2.jpeg', data: jpeg },
          { name: './Images/d/ümlaut.webp', data: webp },
        ]),
      )
    ).finish(lenient);
    expect(result.rows.map((r) => [r.id, r.class])).toEqual([
      ['dog', 'a'],
      ['dog-2', 'b'],
      ['dog-2-2', 'c'],
      ['dog-3', 'c'],
      ['my_dog_v2', 'c'],
      ['_mlaut', 'd'],
    ]);
  });

  describe('profile checks', () => {
    it('names the missing and unexpected Stanford Dogs classes', async () => {
      const profile = PROFILES['stanford-dogs'];
      const missing = await index(packTar(classFiles(STANFORD_DOGS_CLASSES.slice(0, 119), 1)));
      const err = finishError(missing, profile);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        'expected 120 classes for profile stanford-dogs, found 119: missing n02116738-African_hunting_dog; for other data use --profile imagefolder',
      );

      const files = classFiles([...STANFORD_DOGS_CLASSES.slice(2), 'cats'], 1);
      files.push({ name: `Images/${STANFORD_DOGS_CLASSES[0]}/bad.jpg`, data: Buffer.alloc(0) });
      const err2 = finishError(await index(packTar(files)), profile);
      expect(err2.message).toBe(
        'expected 120 classes for profile stanford-dogs, found 119: no valid images in n02085620-Chihuahua; missing n02085782-Japanese_spaniel; not Stanford Dogs classes: cats; for other data use --profile imagefolder',
      );
    });

    it('requires the complete Stanford Dogs image count', async () => {
      const err = finishError(
        await index(packTar(classFiles(STANFORD_DOGS_CLASSES, 2))),
        PROFILES['stanford-dogs'],
      );
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        'expected 20580 images for profile stanford-dogs, found 240 image files (240 valid); is the tarball the complete dataset? For other data use --profile imagefolder',
      );
      const ok = (await index(packTar(classFiles(STANFORD_DOGS_CLASSES, 2)))).finish({
        ...PROFILES['stanford-dogs'],
        expectedImages: 240,
      });
      expect(ok).toMatchObject({ images: 240, classes: 120 });
    });

    it('requires enough images in every class', async () => {
      const files = [...classFiles(['a', 'c'], 3), ...classFiles(['b'], 2)];
      const err = finishError(await index(packTar(files)), PROFILES.imagefolder);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        'class b has 2 valid images, the imagefolder profile needs at least 3 (--min-per-class)',
      );
      files.push({ name: 'Images/d/0.jpg', data: Buffer.from('x') }, ...classFiles(['e'], 1));
      // 1 invalid of 10 entries is over 5%, so allow more for this check.
      const err2 = finishError(await index(packTar(files)), {
        ...PROFILES.imagefolder,
        maxInvalidShare: 0.1,
      });
      expect(err2.message).toBe(
        '3 classes have too few valid images (b: 2, d: 0, e: 1), the imagefolder profile needs at least 3 (--min-per-class)',
      );
      const ok = (await index(packTar(files.slice(0, 8)))).finish(
        resolveProfile('imagefolder', { minPerClass: 2 }),
      );
      expect(ok.perClass).toEqual({ a: 3, b: 2, c: 3 });
    });

    it('requires at least two classes for imagefolder', async () => {
      const err = finishError(await index(packTar(classFiles(['only'], 5))), PROFILES.imagefolder);
      expect(err.message).toBe(
        "found 1 class with valid images (only), the imagefolder profile needs at least 2: put each class's images in its own folder",
      );
    });

    it('fails when the invalid share is over the limit, naming the first invalid entries', async () => {
      const good = classFiles(['a', 'b'], 100).slice(0, 187);
      const bad = Array.from({ length: 13 }, (_, i) => ({
        name: `Images/b/bad${i}.jpg`,
        data: Buffer.alloc(0),
      }));
      const tar = Buffer.concat([
        tarHeader({ name: 'Images/', type: 'dir' }), // directories do not count
        packTar([...good, ...bad]),
      ]);
      const err = finishError(await index(tar), PROFILES.imagefolder);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        '13 of 200 entries (6.5%) are invalid, more than the allowed 5% (--max-invalid-share): first ones: ' +
          'Images/b/bad0.jpg (empty file (0 bytes)), Images/b/bad1.jpg (empty file (0 bytes)), ' +
          'Images/b/bad2.jpg (empty file (0 bytes)), Images/b/bad3.jpg (empty file (0 bytes)), ' +
          'Images/b/bad4.jpg (empty file (0 bytes)) and 8 more',
      );
      // Exactly at the limit passes.
      const atLimit = await index(
        packTar([...classFiles(['a', 'b'], 100).slice(0, 190), ...bad.slice(0, 10)]),
      );
      expect(atLimit.finish(PROFILES.imagefolder)).toMatchObject({ images: 190, classes: 2 });
      expect(atLimit.finish(PROFILES.imagefolder).invalid).toHaveLength(10);
    });

    it('fails when there are no valid images at all', async () => {
      const err = finishError(await index(packTar([{ name: 'flat.jpg', data: jpeg }])), lenient);
      expect(err.message).toBe(
        'no valid images found among 1 entries; expected <class folder>/<image> files: first ones: flat.jpg (not inside a class folder)',
      );
    });
  });
});

describe('profiles', () => {
  it('resolves a profile with overrides', () => {
    expect(resolveProfile('stanford-dogs')).toEqual(PROFILES['stanford-dogs']);
    expect(resolveProfile('imagefolder', { minPerClass: 10, maxInvalidShare: 0 })).toEqual({
      name: 'imagefolder',
      minClasses: 2,
      minPerClass: 10,
      maxInvalidShare: 0,
    });
    expect(PROFILES.imagefolder.minPerClass).toBe(3);
  });

  it('parses WordNet class folder names', () => {
    expect(parseClassName('n02085620-Chihuahua')).toEqual({ wnid: 'n02085620', breed: 'Chihuahua' });
    expect(parseClassName('n02089078-black-and-tan_coonhound')).toEqual({
      wnid: 'n02089078',
      breed: 'black-and-tan coonhound',
    });
    expect(parseClassName('golden_retriever')).toEqual({ breed: 'golden_retriever' });
  });
});
