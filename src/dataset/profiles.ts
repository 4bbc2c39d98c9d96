import { InputError } from '../errors.ts';
import type { DatasetProfile } from '../types.ts';

// What VerifyDataset requires of a dataset. For stanford-dogs, expectedImages counts the image
// files in class folders, valid or not: it proves the tarball is complete, while damaged images
// are governed by maxInvalidShare (Stanford Dogs ships a PNG under a .jpg name, for example).

export type ProfileName = DatasetProfile['name'];

export const PROFILES: Readonly<Record<ProfileName, Readonly<DatasetProfile>>> = {
  'stanford-dogs': {
    name: 'stanford-dogs',
    expectedClasses: 120,
    expectedImages: 20580,
    // The published images.tar: a truncated or substituted download fails at FetchDataset.
    tarballBytes: 793_579_520,
    minClasses: 120,
    minPerClass: 1,
    maxInvalidShare: 0.01,
  },
  imagefolder: {
    name: 'imagefolder',
    minClasses: 2,
    minPerClass: 3,
    maxInvalidShare: 0.05,
  },
};

export interface ProfileOverrides {
  minPerClass?: number;
  maxInvalidShare?: number;
}

/** The named profile with the caller's overrides applied; bad names or values are InputErrors. */
export function resolveProfile(name: string, overrides: ProfileOverrides = {}): DatasetProfile {
  if (!Object.hasOwn(PROFILES, name))
    throw new InputError(
      `unknown dataset profile ${JSON.stringify(name)}: use ${Object.keys(PROFILES).join(' or ')}`,
    );
  const profile: DatasetProfile = { ...PROFILES[name as ProfileName] };
  const { minPerClass, maxInvalidShare } = overrides;
  if (minPerClass !== undefined) {
    if (!Number.isSafeInteger(minPerClass) || minPerClass < 1)
      throw new InputError(`--min-per-class must be a whole number of at least 1, got ${minPerClass}`);
    profile.minPerClass = minPerClass;
  }
  if (maxInvalidShare !== undefined) {
    if (!Number.isFinite(maxInvalidShare) || maxInvalidShare < 0 || maxInvalidShare > 1)
      throw new InputError(
        `--max-invalid-share must be a share between 0 and 1 (0.05 allows 5% invalid entries), got ${maxInvalidShare}`,
      );
    profile.maxInvalidShare = maxInvalidShare;
  }
  return profile;
}

/** `n02085620-Chihuahua` → wnid n02085620, breed "Chihuahua"; other folder names are the breed. */
export function parseClassName(dir: string): { wnid?: string; breed: string } {
  const m = /^(n\d{8})-(.+)$/.exec(dir);
  return m ? { wnid: m[1]!, breed: m[2]!.replaceAll('_', ' ') } : { breed: dir };
}
