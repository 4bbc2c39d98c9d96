import { expect, it } from 'vitest';
import { loadTf } from '../src/model/tf-backend.ts';
import type { LabelledFeatures } from '../src/model/train-head.ts';
import { type BackboneTables, chooseHead, START_RECIPES, TUNE_GRID } from '../src/training/head-choice.ts';
import { TRAINING_DEFAULTS } from '../src/training/training-config.ts';

// `--tune`: every head is trained over the grid around its start's recipes on the (cached)
// features, and the one best on val is kept; every setting is recorded. Synthetic features:
// three classes, each a noisy blob in 8 dimensions.

const [CLASSES, DIM] = [3, 8];

function blobs(perClass: number, seed: number): LabelledFeatures {
  let state = seed;
  const rand = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const features = new Float32Array(CLASSES * perClass * DIM);
  const labels = new Int32Array(CLASSES * perClass);
  for (let i = 0; i < labels.length; i++) {
    labels[i] = i % CLASSES;
    for (let d = 0; d < DIM; d++)
      features[i * DIM + d] = (d % CLASSES === labels[i] ? 1 : 0) + 1.2 * (rand() - 0.5);
  }
  return { features, labels };
}

const tables = (): BackboneTables[] => [
  {
    source: 'synthetic',
    featureDim: DIM,
    train: blobs(30, 1),
    val: blobs(10, 2),
    start: { kind: 'random', reason: 'test' },
  },
];

it('--tune trains each recipe over the grid, records every setting and keeps the best on val', async () => {
  const { tf } = await loadTf();
  const recipe = { ...TRAINING_DEFAULTS, epochs: 4, patience: 4, tune: true };
  const choice = await chooseHead(tables(), CLASSES, recipe, tf);
  const smoothing = new Set([...TUNE_GRID.labelSmoothing, recipe.labelSmoothing]);
  const grid = START_RECIPES.random.flatMap((r) =>
    TUNE_GRID.learningRateFactors.flatMap((f) =>
      [...smoothing].map((s) => ({
        learningRate: r.learningRate * f,
        weightDecay: r.weightDecay,
        labelSmoothing: s,
      })),
    ),
  );
  expect(
    choice.trained.map(({ learningRate, weightDecay, labelSmoothing }) => ({
      learningRate,
      weightDecay,
      labelSmoothing,
    })),
  ).toEqual(grid);
  for (const t of choice.trained) {
    expect(t.label).toBe('head');
    expect(t.valAccuracy).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(t.valLoss)).toBe(true);
  }
  const best = Math.max(...choice.trained.map((t) => t.valAccuracy));
  expect(choice.valAccuracy).toBe(best);

  const plain = await chooseHead(tables(), CLASSES, { ...recipe, tune: false }, tf);
  expect(plain.trained.map((t) => t.learningRate)).toEqual(START_RECIPES.random.map((r) => r.learningRate));
  expect(plain.trained.every((t) => t.labelSmoothing === recipe.labelSmoothing)).toBe(true);
}, 120_000);
