import { DataError } from '../errors.ts';
import {
  fitStandardizer,
  foldStandardizer,
  type Standardizer,
  standardize,
  toStandardized,
} from '../model/standardize.ts';
import type { Tf } from '../model/tf-backend.ts';
import {
  type EpochLog,
  type HeadTrainingOptions,
  type HeadTrainingResult,
  type LabelledFeatures,
  trainHead,
} from '../model/train-head.ts';
import type { BackboneClassifier, HeadWeights } from '../model/types.ts';

// Which head a run ships, chosen on the val split: one backbone's trained head; for several, a
// head trained on their concatenated features or the average of per-backbone heads; and the
// backbones' own ImageNet classifiers (zero-shot) whenever no trained head beats them, so
// training can never make the model worse than what it started from.

export interface LinearRows {
  /** Row-major [featureDim × classes]. */
  weights: Float32Array;
  bias: Float32Array;
}

/** Where a linear head starts: the backbone's own classifier rows for the classes, or random and why. */
export type HeadStart =
  | { kind: 'backbone-classifier-rows'; rows: LinearRows }
  | { kind: 'random'; reason: string };

export interface StartInput {
  /** wnid per class, when the class name carries one. */
  wnids: (string | undefined)[];
  classifier: BackboneClassifier | undefined;
  outputLabels: readonly string[] | undefined;
  featureDim: number;
  hidden: number;
  initFromBackbone: boolean;
}

/** The backbone's classifier rows for these classes, or why the head must start from random weights. */
export function headStart(s: StartInput): HeadStart {
  const random = (reason: string): HeadStart => ({ kind: 'random', reason });
  if (!s.initFromBackbone) return random('initFromBackbone is off');
  if (s.hidden !== 0)
    return random(`the head has a hidden layer (hidden ${s.hidden}); rows start a linear head only`);
  if (!s.classifier) return random('no classifier with constant weights found on top of the pooled feature');
  if (!s.outputLabels)
    return random('the backbone\'s outputs are not ImageNet classes (backboneLabels "none")');
  if (s.outputLabels.length !== s.classifier.outputs)
    return random(
      `the classifier has ${s.classifier.outputs} outputs, not the ${s.outputLabels.length} ImageNet classes`,
    );
  const columns = s.wnids.map((w) => (w ? s.outputLabels!.indexOf(w) : -1));
  const missing = columns.filter((c) => c < 0).length;
  if (missing > 0)
    return random(
      `${missing} of the ${columns.length} classes are not ImageNet classes (no wnid among the outputs)`,
    );
  const { classifier: cls } = s;
  const classes = columns.length;
  const weights = new Float32Array(s.featureDim * classes);
  for (let d = 0; d < s.featureDim; d++) {
    for (let c = 0; c < classes; c++) weights[d * classes + c] = cls.weights[d * cls.outputs + columns[c]!]!;
  }
  return {
    kind: 'backbone-classifier-rows',
    rows: { weights, bias: Float32Array.from(columns, (col) => cls.bias[col]!) },
  };
}

export interface BackboneTables {
  source: string;
  featureDim: number;
  /** Raw features, same rows (and labels) for every backbone; standardised in place here. */
  train: LabelledFeatures;
  val: LabelledFeatures;
  start: HeadStart;
}

/** The head's options; the step size and weight decay, when unset, depend on the start. */
export type HeadRecipe = Omit<HeadTrainingOptions, 'learningRate' | 'weightDecay' | 'init' | 'onEpoch'> & {
  learningRate?: number;
  weightDecay?: number;
  /** Sweep TUNE_GRID around each recipe on the cached features and keep the best on val. */
  tune?: boolean;
};

/**
 * Recipes by start; with several, each is trained and the best on val kept (recorded in
 * `trained`). From the backbone's rows: small steps fine-tune a classifier that is already good.
 * From random weights, measured on the real sample's val split (BENCHMARKS.md): the old large
 * steps overfit 2048-d features (ResNet-50 val 0.674), steps of 1e-3 with strong decoupled weight
 * decay (w ← w·(1 − 1e-3·5) per step) do not (0.756) — but underfit small, easy feature sets
 * (the tiny backbone's 27 features), which the first recipe suits.
 */
export const START_RECIPES: Record<HeadStart['kind'], { learningRate: number; weightDecay: number }[]> = {
  'backbone-classifier-rows': [{ learningRate: 1e-4, weightDecay: 1e-4 }],
  random: [
    { learningRate: 3e-3, weightDecay: 1e-4 },
    { learningRate: 1e-3, weightDecay: 5 },
  ],
};

/**
 * `--tune`: each recipe's step size times these factors, each with no label smoothing and the
 * configured one. Heads train on cached features, so the six runs per recipe are cheap.
 */
export const TUNE_GRID = { learningRateFactors: [1 / 3, 1, 3], labelSmoothing: [0] } as const;

export type CandidateName = 'single' | 'concatenated' | 'averaged' | 'zero-shot';

export interface Candidate {
  name: CandidateName;
  valAccuracy: number;
  valLoss: number;
}

export interface BackboneSummary {
  source: string;
  featureDim: number;
  init: HeadStart['kind'];
  initReason?: string;
  /** Its own ImageNet classifier restricted to the classes, on the val split. */
  zeroShotValAccuracy?: number;
  /** Its own trained head alone, on the val split. */
  valAccuracy: number;
  bestEpoch: number;
}

export interface HeadChoice {
  /** On the raw concatenated features (standardisation folded in). */
  head: HeadWeights;
  chosen: CandidateName;
  valAccuracy: number;
  /** 0 when the zero-shot head was chosen. */
  bestEpoch: number;
  /** The chosen trained head's epochs (the single or concatenated head; empty otherwise). */
  epochs: EpochLog[];
  stoppedEarly: boolean;
  candidates: Candidate[];
  backbones: BackboneSummary[];
  /** Every backbone's rows (scaled by 1/backbones, so the logits average) on the val split. */
  zeroShotValAccuracy?: number;
  /** Every head trained, with the step size, weight decay and smoothing it got (the `--tune` sweep). */
  trained: TrainedHead[];
}

export interface TrainedHead {
  label: string;
  learningRate: number;
  weightDecay: number;
  labelSmoothing: number;
  /** Its best epoch's; the best recipe per label is the one kept (ties: the lower val loss). */
  valAccuracy: number;
  valLoss: number;
}

/** The settings trained per head: the start's recipes (or the given one), swept when tuning. */
function settings(recipe: HeadRecipe, defaults: { learningRate: number; weightDecay: number }[]) {
  const given = recipe.learningRate !== undefined || recipe.weightDecay !== undefined;
  const base = (given ? [defaults[0]!] : defaults).map((d) => ({
    learningRate: recipe.learningRate ?? d.learningRate,
    weightDecay: recipe.weightDecay ?? d.weightDecay,
    labelSmoothing: recipe.labelSmoothing,
  }));
  if (!recipe.tune) return base;
  const smoothing = [...new Set([...TUNE_GRID.labelSmoothing, recipe.labelSmoothing])];
  return base.flatMap((b) =>
    TUNE_GRID.learningRateFactors.flatMap((f) =>
      smoothing.map((labelSmoothing) => ({ ...b, learningRate: b.learningRate * f, labelSmoothing })),
    ),
  );
}

export async function chooseHead(
  backbones: BackboneTables[],
  classes: number,
  recipe: HeadRecipe,
  tf: Tf,
  onEpoch?: (label: string, e: EpochLog) => void,
): Promise<HeadChoice> {
  checkAligned(backbones);
  const scalers = backbones.map((b) => {
    const s = fitStandardizer(b.train.features, b.featureDim);
    standardize(b.train.features, s);
    standardize(b.val.features, s);
    return s;
  });
  const inits = backbones.map((b, i) =>
    b.start.kind === 'backbone-classifier-rows' ? toStandardized(b.start.rows, scalers[i]!) : undefined,
  );
  const trained: TrainedHead[] = [];
  const train = async (
    label: string,
    data: { train: LabelledFeatures; val: LabelledFeatures },
    dim: number,
    init?: LinearRows,
  ) => {
    let best: { result: HeadTrainingResult; valAccuracy: number; valLoss: number } | undefined;
    for (const setting of settings(recipe, START_RECIPES[init ? 'backbone-classifier-rows' : 'random'])) {
      const result = await trainHead(
        { ...data, featureDim: dim, classes },
        { ...recipe, ...setting, init, onEpoch: onEpoch && ((e) => onEpoch(label, e)) },
        tf,
      );
      const { valAccuracy, valLoss } = bestEpochScores(result) ?? {
        valAccuracy: 0,
        valLoss: Number.POSITIVE_INFINITY,
      };
      trained.push({ label, ...setting, valAccuracy, valLoss });
      if (
        !best ||
        valAccuracy > best.valAccuracy ||
        (valAccuracy === best.valAccuracy && valLoss < best.valLoss)
      )
        best = { result, valAccuracy, valLoss };
    }
    return best!.result;
  };
  const single = backbones.length === 1;
  const alone: HeadTrainingResult[] = [];
  for (const [i, b] of backbones.entries()) {
    alone.push(await train(single ? 'head' : `backbone ${i + 1} head`, b, b.featureDim, inits[i]));
  }
  const dim = backbones.reduce((n, b) => n + b.featureDim, 0);
  const val: LabelledFeatures = {
    features: concatRows(backbones.map((b) => b.val)),
    labels: backbones[0]!.val.labels,
  };
  const scaled = (parts: LinearRows[]) => stackRows(parts, classes, 1 / parts.length);
  const options: { name: CandidateName; rows: HeadWeights; run?: HeadTrainingResult }[] = [];
  if (single) {
    options.push({ name: 'single', rows: alone[0]!.head, run: alone[0] });
  } else {
    const concatenated = await train(
      'concatenated head',
      {
        train: { features: concatRows(backbones.map((b) => b.train)), labels: backbones[0]!.train.labels },
        val,
      },
      dim,
      inits.every(Boolean) ? scaled(inits as LinearRows[]) : undefined,
    );
    options.push({ name: 'concatenated', rows: concatenated.head, run: concatenated });
    if (alone.every((r) => r.head.layers.length === 1)) {
      options.push({
        name: 'averaged',
        rows: linearHead(scaled(alone.map((r) => r.head.layers[0]!)), dim, classes),
      });
    }
  }
  if (inits.every(Boolean))
    options.push({ name: 'zero-shot', rows: linearHead(scaled(inits as LinearRows[]), dim, classes) });

  // A trained head's scores are its best epoch's, measured on these same val rows while training.
  const candidates = options.map((o) => ({
    name: o.name,
    ...((o.run && bestEpochScores(o.run)) ?? evaluateHead(val, dim, o.rows)),
  }));
  // Strictly better only: a trained head wins ties with the zero-shot one, listed after it.
  let best = 0;
  candidates.forEach((c, i) => {
    if (c.valAccuracy > candidates[best]!.valAccuracy) best = i;
  });
  const chosen = options[best]!;
  const zeroShot = candidates.find((c) => c.name === 'zero-shot');
  const summaries: BackboneSummary[] = backbones.map((b, i) => ({
    source: b.source,
    featureDim: b.featureDim,
    init: b.start.kind,
    ...(b.start.kind === 'random' ? { initReason: b.start.reason } : {}),
    ...(inits[i]
      ? {
          // One backbone's zero-shot head is the zero-shot candidate: not evaluated twice.
          zeroShotValAccuracy:
            single && zeroShot
              ? zeroShot.valAccuracy
              : evaluateLinear(b.val, b.featureDim, inits[i]!).valAccuracy,
        }
      : {}),
    valAccuracy: bestEpochScores(alone[i]!)?.valAccuracy ?? 0,
    bestEpoch: alone[i]!.bestEpoch,
  }));
  return {
    head: foldStandardizer(chosen.rows, concatScalers(scalers)),
    chosen: chosen.name,
    valAccuracy: candidates[best]!.valAccuracy,
    bestEpoch: chosen.run?.bestEpoch ?? 0,
    epochs: chosen.run?.epochs ?? [],
    stoppedEarly: chosen.run?.stoppedEarly ?? false,
    candidates,
    backbones: summaries,
    ...(zeroShot ? { zeroShotValAccuracy: zeroShot.valAccuracy } : {}),
    trained,
  };
}

/** A trained head's val scores at its best epoch; none when it trained no epoch. */
function bestEpochScores(run: HeadTrainingResult): Omit<Candidate, 'name'> | undefined {
  const epoch = run.epochs.find((e) => e.epoch === run.bestEpoch);
  return epoch && { valAccuracy: epoch.valAccuracy, valLoss: epoch.valLoss };
}

function checkAligned(backbones: BackboneTables[]): void {
  const [first, ...rest] = backbones;
  if (!first) throw new DataError('no backbone to train a head on');
  for (const b of rest) {
    for (const split of ['train', 'val'] as const) {
      const a = first[split].labels;
      const c = b[split].labels;
      if (a.length !== c.length || a.some((l, i) => l !== c[i]))
        throw new DataError(
          `the ${split} features of ${b.source} and ${first.source} are not the same images in the same order`,
        );
    }
  }
}

function linearHead(rows: LinearRows, inputDim: number, classes: number): HeadWeights {
  return { inputDim, classes, layers: [{ ...rows, inDim: inputDim, outDim: classes }] };
}

/** Rows of several linear heads stacked (for concatenated features), times `scale`; biases summed times `scale`. */
function stackRows(parts: LinearRows[], classes: number, scale: number): LinearRows {
  const weights = new Float32Array(parts.reduce((n, p) => n + p.weights.length, 0));
  const bias = new Float32Array(classes);
  let offset = 0;
  for (const p of parts) {
    weights.set(
      p.weights.map((w) => w * scale),
      offset,
    );
    offset += p.weights.length;
    p.bias.forEach((b, c) => {
      bias[c]! += b * scale;
    });
  }
  return { weights, bias };
}

/** Per-row concatenation of each backbone's features. */
function concatRows(parts: LabelledFeatures[]): Float32Array {
  if (parts.length === 1) return parts[0]!.features;
  const rows = parts[0]!.labels.length;
  const dims = parts.map((p) => p.features.length / rows);
  const width = dims.reduce((n, d) => n + d, 0);
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let offset = r * width;
    parts.forEach((p, i) => {
      out.set(p.features.subarray(r * dims[i]!, (r + 1) * dims[i]!), offset);
      offset += dims[i]!;
    });
  }
  return out;
}

function concatScalers(scalers: Standardizer[]): Standardizer {
  const join = (pick: (s: Standardizer) => Float32Array) => {
    const out = new Float32Array(scalers.reduce((n, s) => n + pick(s).length, 0));
    let offset = 0;
    for (const s of scalers) {
      out.set(pick(s), offset);
      offset += pick(s).length;
    }
    return out;
  };
  return { mean: join((s) => s.mean), std: join((s) => s.std) };
}

function evaluateLinear(data: LabelledFeatures, dim: number, rows: LinearRows): Omit<Candidate, 'name'> {
  return evaluateHead(data, dim, linearHead(rows, dim, rows.bias.length));
}

/** Accuracy and mean cross-entropy of a head (ReLU between layers) on labelled features, in JS. */
export function evaluateHead(
  data: LabelledFeatures,
  dim: number,
  head: HeadWeights,
): Omit<Candidate, 'name'> {
  const n = data.labels.length;
  let correct = 0;
  let loss = 0;
  for (let r = 0; r < n; r++) {
    let x: Float64Array = Float64Array.from(data.features.subarray(r * dim, (r + 1) * dim));
    head.layers.forEach((layer, i) => {
      const y = Float64Array.from(layer.bias);
      for (let d = 0; d < layer.inDim; d++) {
        const v = x[d]!;
        if (v === 0) continue;
        const row = d * layer.outDim;
        for (let o = 0; o < layer.outDim; o++) y[o]! += v * layer.weights[row + o]!;
      }
      x = i < head.layers.length - 1 ? y.map((v) => Math.max(0, v)) : y;
    });
    let top = 0;
    for (let o = 1; o < x.length; o++) if (x[o]! > x[top]!) top = o;
    const label = data.labels[r]!;
    if (top === label) correct++;
    const max = x[top]!;
    const logSum = Math.log(x.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
    loss += logSum - x[label]!;
  }
  return { valAccuracy: correct / n, valLoss: loss / n };
}
