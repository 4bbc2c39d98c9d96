import { DataError } from '../errors.ts';
import type { DatasetProfile, ImageFormat, IndexRow, InvalidEntry } from '../types.ts';
import { sniffImage } from './image-sniff.ts';
import { STANFORD_DOGS_CLASSES } from './stanford-dogs-classes.ts';
import type { TarEntry } from './tar-reader.ts';

// Turns tar entries into index rows, one entry at a time (the tarball streams by once).
// Layout: <anything>/<class folder>/<image file>; the class is the image's parent folder.
// Nothing is ever extracted or followed: unsafe paths, links and devices are listed as invalid.

export interface DatasetIndex {
  /** Valid images in tar order. */
  rows: IndexRow[];
  /** Valid images per class, keys sorted. */
  perClass: Record<string, number>;
  invalid: InvalidEntry[];
  warnings: InvalidEntry[];
  /** Files that do not claim to be images (READMEs, .DS_Store, annotations): skipped, not errors. */
  ignored: InvalidEntry[];
  images: number;
  classes: number;
}

const EXTENSION_FORMAT: Record<string, ImageFormat> = {
  jpg: 'jpeg',
  jpeg: 'jpeg',
  png: 'png',
  webp: 'webp',
};

const LINK_REASONS: Partial<Record<TarEntry['type'], string>> = {
  symlink: 'symbolic link',
  hardlink: 'hard link',
  chardev: 'character device',
  blockdev: 'block device',
  fifo: 'FIFO (named pipe)',
  other: 'special tar entry (not a regular file)',
};

export class DatasetIndexer {
  private readonly rows: IndexRow[] = [];
  private readonly invalid: InvalidEntry[] = [];
  private readonly warnings: InvalidEntry[] = [];
  private readonly ignored: InvalidEntry[] = [];
  private readonly ids = new Set<string>();
  /** Image-named files per class folder, valid or not: a class whose images all fail still counts. */
  private readonly imageFiles = new Map<string, number>();
  /** Entries that are neither directories nor ignored: the denominator of the invalid share. */
  private entries = 0;

  add(entry: TarEntry): void {
    if (entry.type === 'dir') return;
    const ignore = entry.type === 'file' ? ignoredReason(entry.name) : undefined;
    if (ignore && !unsafePathReason(entry.name)) {
      this.ignored.push({ member: entry.name, reason: ignore });
      return;
    }
    this.entries++;
    const reason = this.indexEntry(entry);
    if (reason) this.invalid.push({ member: entry.name, reason });
  }

  /** Adds the entry's row, or says why it is not a usable image. */
  private indexEntry(entry: TarEntry): string | undefined {
    const member = entry.name;
    const unsafe = unsafePathReason(member);
    if (unsafe) return unsafe;
    const special = LINK_REASONS[entry.type];
    if (special) {
      const target = entry.linkname === undefined ? '' : ` to ${JSON.stringify(entry.linkname)}`;
      return `${special}${target}; only regular files are indexed, links are never followed`;
    }

    const parts = member.split('/').filter((p) => p !== '' && p !== '.');
    const file = parts.at(-1) ?? '';
    const cls = parts.at(-2);
    if (cls === undefined) return 'not inside a class folder';
    const dot = file.lastIndexOf('.');
    // add() has ignored regular files without an image name.
    const named = imageFormatByName(file)!;

    this.imageFiles.set(cls, (this.imageFiles.get(cls) ?? 0) + 1);
    if (!entry.data) return `too large to index (${entry.size} bytes, over the per-image read limit)`;
    const sniff = sniffImage(entry.data);
    if (!sniff.ok) return sniff.reason;
    if (sniff.format !== named) {
      const ext = file.slice(dot).toLowerCase();
      this.warnings.push({
        member,
        reason: `${sniff.format.toUpperCase()} data under a ${ext} name; converted to JPEG during preprocessing`,
      });
    }
    if (sniff.note) this.warnings.push({ member, reason: sniff.note });
    this.rows.push({
      id: this.uniqueId(file.slice(0, dot)),
      class: cls,
      member,
      offset: entry.dataOffset,
      size: entry.size,
      width: sniff.width,
      height: sniff.height,
      format: sniff.format,
    });
    return undefined;
  }

  /** The index, or a DataError saying what is wrong with the dataset and what to do. */
  finish(profile: DatasetProfile): DatasetIndex {
    const perClassMap = new Map<string, number>();
    for (const row of this.rows) perClassMap.set(row.class, (perClassMap.get(row.class) ?? 0) + 1);
    const perClass = Object.fromEntries([...perClassMap].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const classes = Object.keys(perClass);

    if (this.rows.length === 0)
      throw new DataError(
        `no valid images found among ${this.entries} entries; expected <class folder>/<image> files${this.firstInvalid()}`,
      );
    const share = this.invalid.length / this.entries;
    if (share > profile.maxInvalidShare)
      throw new DataError(
        `${this.invalid.length} of ${this.entries} entries (${percent(share)}) are invalid, more than the allowed ${percent(profile.maxInvalidShare)} (--max-invalid-share)${this.firstInvalid()}`,
      );
    this.checkClasses(profile, classes);
    if (profile.expectedImages !== undefined) {
      const found = [...this.imageFiles.values()].reduce((a, b) => a + b, 0);
      if (found !== profile.expectedImages)
        throw new DataError(
          `expected ${profile.expectedImages} images for profile ${profile.name}, found ${found} image files (${this.rows.length} valid); is the tarball the complete dataset? For other data use --profile imagefolder`,
        );
    }
    const thin = [...this.imageFiles.keys()]
      .map((cls) => [cls, perClass[cls] ?? 0] as const)
      .filter(([, n]) => n < profile.minPerClass);
    if (thin.length > 0) {
      const [cls, n] = thin[0]!;
      const what =
        thin.length === 1
          ? `class ${cls} has ${n} valid image${n === 1 ? '' : 's'}`
          : `${thin.length} classes have too few valid images (${list(thin.map(([c, k]) => `${c}: ${k}`))})`;
      throw new DataError(
        `${what}, the ${profile.name} profile needs at least ${profile.minPerClass} (--min-per-class)`,
      );
    }
    return {
      rows: this.rows,
      perClass,
      invalid: this.invalid,
      warnings: this.warnings,
      ignored: this.ignored,
      images: this.rows.length,
      classes: classes.length,
    };
  }

  private checkClasses(profile: DatasetProfile, classes: string[]): void {
    const found = classes.length;
    const expected = profile.expectedClasses;
    if (expected !== undefined && found !== expected) {
      throw new DataError(
        `expected ${expected} classes for profile ${profile.name}, found ${found}${this.classHint(profile, classes)}; for other data use --profile imagefolder`,
      );
    }
    if (found < profile.minClasses)
      throw new DataError(
        `found ${found} class${found === 1 ? '' : 'es'} with valid images (${list(classes)}), the ${profile.name} profile needs at least ${profile.minClasses}: put each class's images in its own folder`,
      );
  }

  /** Names the classes that explain a wrong count. */
  private classHint(profile: DatasetProfile, classes: string[]): string {
    const have = new Set(classes);
    const empty = [...this.imageFiles.keys()].filter((c) => !have.has(c));
    const hints: string[] = [];
    if (empty.length > 0) hints.push(`no valid images in ${list(empty)}`);
    if (profile.name === 'stanford-dogs') {
      const known = new Set(STANFORD_DOGS_CLASSES);
      const missing = STANFORD_DOGS_CLASSES.filter((c) => !have.has(c) && !this.imageFiles.has(c));
      const unexpected = classes.filter((c) => !known.has(c));
      if (missing.length > 0) hints.push(`missing ${list(missing)}`);
      if (unexpected.length > 0) hints.push(`not Stanford Dogs classes: ${list(unexpected)}`);
    }
    return hints.length > 0 ? `: ${hints.join('; ')}` : '';
  }

  private firstInvalid(): string {
    if (this.invalid.length === 0) return '';
    return `: first ones: ${list(this.invalid.map((e) => `${e.member} (${e.reason})`))}`;
  }

  /** WebDataset splits sample keys at the first dot, so ids keep to [A-Za-z0-9_-]. */
  private uniqueId(stem: string): string {
    const base = stem.replace(/[^A-Za-z0-9_-]/g, '_');
    let id = base;
    for (let n = 2; this.ids.has(id); n++) id = `${base}-${n}`;
    this.ids.add(id);
    return id;
  }
}

function imageFormatByName(file: string): ImageFormat | undefined {
  const dot = file.lastIndexOf('.');
  return dot > 0 ? EXTENSION_FORMAT[file.slice(dot + 1).toLowerCase()] : undefined;
}

/**
 * Why a regular file is skipped without counting against the dataset: it does not claim to be
 * an image (a README, .DS_Store, an annotation file), or it is macOS metadata beside one.
 */
function ignoredReason(member: string): string | undefined {
  const file = member.split(/[/\\]/).at(-1) ?? '';
  if (file.startsWith('._'))
    return 'macOS metadata file (create the tarball with COPYFILE_DISABLE=1 to leave these out)';
  if (!imageFormatByName(file)) return 'not an image file name (.jpg, .jpeg, .png or .webp)';
  return undefined;
}

/** Why a member path is unsafe to use, or undefined: absolute paths and '..' components. */
function unsafePathReason(path: string): string | undefined {
  if (path.startsWith('/') || path.startsWith('\\') || /^[A-Za-z]:/.test(path))
    return 'unsafe path: absolute (members must be relative paths)';
  // Backslashes count as separators too: they are ones on Windows.
  if (path.split(/[/\\]/).includes('..')) return "unsafe path: contains a '..' component";
  return undefined;
}

function percent(share: number): string {
  const pct = share * 100;
  return `${Number(pct >= 1 ? pct.toFixed(1) : pct.toPrecision(2))}%`;
}

/** The first few items, and how many more. */
function list(items: readonly string[], max = 5): string {
  const shown = items.slice(0, max).join(', ');
  return items.length > max ? `${shown} and ${items.length - max} more` : shown;
}
