import type { DatasetProfile, ProfileName } from '../types.ts';

// What VerifyDataset requires of a dataset. For stanford-dogs, expectedImages counts the image
// files in class folders, valid or not: it proves the tarball is complete, while damaged images
// are governed by maxInvalidShare (Stanford Dogs ships a PNG under a .jpg name, for example).

export type { ProfileName };

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

/**
 * The named profile with the caller's overrides applied. Names and values are the run
 * configuration's, checked by its schema (config.ts) before any state runs.
 */
export function resolveProfile(name: ProfileName, overrides: ProfileOverrides = {}): DatasetProfile {
  const { minPerClass, maxInvalidShare } = overrides;
  return {
    ...PROFILES[name],
    ...(minPerClass !== undefined ? { minPerClass } : {}),
    ...(maxInvalidShare !== undefined ? { maxInvalidShare } : {}),
  };
}

/** `n02085620-Chihuahua` → wnid n02085620, breed "Chihuahua"; other folder names are the breed. */
export function parseClassName(dir: string): { wnid?: string; breed: string } {
  const m = /^(n\d{8})-(.+)$/.exec(dir);
  return m ? { wnid: m[1]!, breed: m[2]!.replaceAll('_', ' ') } : { breed: dir };
}
