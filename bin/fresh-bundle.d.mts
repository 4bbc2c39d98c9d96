import type { BuildOptions, Metafile } from 'esbuild';

/** An entry point and where its bundle goes, both relative to `root`. */
export interface BundleSpec {
  /** Named in progress and error messages ("the CLI"). */
  name: string;
  root: string;
  entry: string;
  outfile: string;
  /** esbuild's target, e.g. 'node20'. */
  target: string;
}

export const EXTERNAL: string[];
export const CLI_BUNDLE: BundleSpec;
export const TRAIN_BUNDLE: BundleSpec;

export function bundleOptions(o: {
  root: string;
  entryPoints: string[];
  target: string;
  outfile?: string;
  outdir?: string;
}): BuildOptions;
export function staleness(spec: BundleSpec): string | undefined;
export function buildBundle(spec: BundleSpec, log?: (line: string) => void): Promise<Metafile>;
export function ensureBundle(spec: BundleSpec, log?: (line: string) => void): Promise<string>;
