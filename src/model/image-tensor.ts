import sharp from 'sharp';
import { DataError, errorMessage } from '../errors.ts';
import type { PreprocessSpec } from './types.ts';

// Image bytes → the network's input tensor, as the model's metadata says: the evaluation view
// (resize shorter side, center crop) or a random training view (random resized crop,
// horizontal flip, small rotation — the augmentations of the original study).

export interface AugmentOptions {
  /** Seeded generator: the same seed gives the same views. */
  rand: () => number;
  /** Share of the image's area a crop keeps. */
  scale?: [number, number];
  /** Crop aspect ratio range (width / height). */
  ratio?: [number, number];
  maxRotationDegrees?: number;
}

const DEFAULT_SCALE: [number, number] = [0.35, 1];
const DEFAULT_RATIO: [number, number] = [3 / 4, 4 / 3];
const DEFAULT_ROTATION = 10;

export function tensorSize(spec: PreprocessSpec): number {
  return 3 * spec.cropSize * spec.cropSize;
}

/**
 * Spare input tensors, reused instead of allocated: one is 3 × crop² floats (588 KiB at 224),
 * and a fresh one per view made V8 collect garbage every dozen views (bench features).
 * normalise writes every element, so a reused tensor needs no clearing.
 */
export class TensorPool {
  private readonly spare: Float32Array[] = [];
  constructor(private readonly size: number) {}

  take(): Float32Array {
    return this.spare.pop() ?? new Float32Array(this.size);
  }

  give(tensors: Iterable<Float32Array>): void {
    for (const t of tensors) if (t.length === this.size) this.spare.push(t);
  }
}

/** Where normalise reads its cropSize square: the source's row width and the square's corner. */
export interface CropWindow {
  width: number;
  left: number;
  top: number;
}

/**
 * Interleaved RGB bytes (H×W×3) → normalised float tensor in the spec's layout and channel order,
 * read from the crop window (by default the whole image, cropSize square). Each channel maps
 * its 256 byte values through a table of (x/255 − mean) / std, computed as a direct per-pixel
 * formula would and rounded to float32 alike, so the tensor is the same to the bit.
 */
export function normalise(
  rgb: Buffer,
  spec: PreprocessSpec,
  out: Float32Array = new Float32Array(tensorSize(spec)),
  crop: CropWindow = { width: spec.cropSize, left: 0, top: 0 },
): Float32Array {
  const s = spec.cropSize;
  const order = spec.channelOrder === 'RGB' ? [0, 1, 2] : [2, 1, 0];
  // Per channel: the destination start and stride for NCHW (planes) or NHWC (interleaved).
  const planar = spec.layout === 'NCHW';
  const step = planar ? 1 : 3;
  const table = new Float32Array(256);
  for (let c = 0; c < 3; c++) {
    const src = order[c]!;
    const scale = 1 / (255 * spec.std[c]!);
    const shift = spec.mean[c]! / spec.std[c]!;
    for (let v = 0; v < 256; v++) table[v] = v * scale - shift;
    let j = planar ? c * s * s : c;
    for (let y = 0; y < s; y++) {
      let k = ((crop.top + y) * crop.width + crop.left) * 3 + src;
      for (let x = 0; x < s; x++, j += step, k += 3) out[j] = table[rgb[k]!]!;
    }
  }
  return out;
}

/**
 * The evaluation view: shorter side to resizeShorter, then the center cropSize square.
 * The image is decoded once at its own size first: Preprocess's images (all that Validate and
 * feature extraction see) already have that shorter side, so the crop is read from those pixels
 * — the bytes sharp's resize to the same size and extract give, without a metadata call and a
 * second decode. Any other size is decoded again with the resize.
 */
export async function evalView(
  image: Buffer,
  spec: PreprocessSpec,
  name: string,
  out?: Float32Array,
): Promise<Float32Array> {
  try {
    const decoded = await sharp(image, { autoOrient: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    const { width, height } = decoded.info;
    const k = spec.resizeShorter / Math.min(width, height);
    const w = Math.max(spec.cropSize, Math.round(width * k));
    const h = Math.max(spec.cropSize, Math.round(height * k));
    const left = Math.floor((w - spec.cropSize) / 2);
    const top = Math.floor((h - spec.cropSize) / 2);
    if (w === width && h === height) return normalise(decoded.data, spec, out, { width, left, top });
    const resized = await sharp(image, { autoOrient: true })
      .resize(w, h, { fit: 'fill' })
      .extract({ left, top, width: spec.cropSize, height: spec.cropSize })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer();
    return normalise(resized, spec, out);
  } catch (err) {
    throw new DataError(`image ${name} cannot be turned into a tensor: ${errorMessage(err).split('\n')[0]}`);
  }
}

/** A random training view: rotate, random resized crop, maybe mirror. */
export async function trainView(
  image: Buffer,
  spec: PreprocessSpec,
  augment: AugmentOptions,
  name: string,
  out?: Float32Array,
): Promise<Float32Array> {
  const { rand } = augment;
  const [sMin, sMax] = augment.scale ?? DEFAULT_SCALE;
  const [rMin, rMax] = augment.ratio ?? DEFAULT_RATIO;
  const maxRot = augment.maxRotationDegrees ?? DEFAULT_ROTATION;
  const angle = (rand() * 2 - 1) * maxRot;
  const flip = rand() < 0.5;
  const area = sMin + rand() * (sMax - sMin);
  const logRatio = Math.log(rMin) + rand() * (Math.log(rMax) - Math.log(rMin));
  const px = rand();
  const py = rand();
  try {
    // Pass 1: rotation (the canvas grows; corners are filled with mid-grey, close to the mean).
    const rotated = await sharp(image, { autoOrient: true })
      .rotate(angle, { background: { r: 124, g: 116, b: 104 } })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    const { width, height } = rotated.info;
    // The crop stays inside the rotated picture, off the grey corners: for a w×h image turned
    // by θ, the axis-aligned box (w cosθ − h sinθ) × (h cosθ − w sinθ) around the centre.
    const { width: w0, height: h0 } = (await sharp(image).metadata()).autoOrient;
    const sin = Math.sin((Math.abs(angle) * Math.PI) / 180);
    const cos = Math.cos((Math.abs(angle) * Math.PI) / 180);
    const innerW = Math.max(1, Math.min(width, Math.floor(w0 * cos - h0 * sin)));
    const innerH = Math.max(1, Math.min(height, Math.floor(h0 * cos - w0 * sin)));
    const target = area * innerW * innerH;
    const ratio = Math.exp(logRatio);
    const cw = Math.max(1, Math.min(innerW, Math.round(Math.sqrt(target * ratio))));
    const ch = Math.max(1, Math.min(innerH, Math.round(Math.sqrt(target / ratio))));
    const left = Math.floor((width - innerW) / 2 + px * (innerW - cw));
    const top = Math.floor((height - innerH) / 2 + py * (innerH - ch));
    let pipeline = sharp(rotated.data, { raw: { width, height, channels: 3 } })
      .extract({ left, top, width: cw, height: ch })
      .resize(spec.cropSize, spec.cropSize, { fit: 'fill' });
    if (flip) pipeline = pipeline.flop();
    const { data } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    return normalise(data, spec, out);
  } catch (err) {
    throw new DataError(`image ${name} cannot be augmented: ${errorMessage(err).split('\n')[0]}`);
  }
}
