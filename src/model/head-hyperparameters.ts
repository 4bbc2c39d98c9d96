import * as z from 'zod';
import { integer, number, numberAbove, object, seed } from '../schema/fields.ts';

// The classifier head's hyperparameters and their limits, written once: the run configuration
// (training-config.ts) and trainHead itself check them with these schemas. Kept apart from
// train-head.ts so that parsing a configuration does not load TensorFlow.js.

/** Early stopping usually ends far sooner; this bounds a run that would not stop. */
export const MAX_EPOCHS = 10_000;

export const HEAD_HYPERPARAMETERS = {
  /** 0: linear head (logits = x·W + b); else one hidden ReLU layer of this width. */
  hidden: integer(0, 8192),
  /** Dropout rate on the input of the output layer (the features for a linear head). */
  dropout: number(0, 0.95),
  /** Adam step size. */
  learningRate: numberAbove(0, 1),
  /** Decoupled weight decay (AdamW) on kernels, not biases: each step w ← w·(1 − learningRate·weightDecay). */
  weightDecay: z
    .number({ error: 'must be a number from 0 up' })
    .min(0, { error: 'must be a number from 0 up' }),
  /** Targets become (1 − s)·onehot + s/classes. */
  labelSmoothing: number(0, 0.5),
  batchSize: integer(1, 65_536),
  /** Upper bound; early stopping may end sooner. 0 returns the starting weights. */
  epochs: integer(0, MAX_EPOCHS),
  /** Stop once this many epochs in a row beat neither the best validation accuracy nor, at equal accuracy, its loss. */
  patience: integer(1, MAX_EPOCHS),
  /** Weight init, shuffling and dropout masks all derive from it. */
  seed: seed(),
};

/**
 * A step that shrinks a weight by its whole size or more would flip or zero it: checked where
 * both are known (a configuration may leave them to the head's start recipe).
 */
export function checkDecayStep(
  ctx: z.core.ParsePayload<{ learningRate?: number; weightDecay?: number }>,
): void {
  const { learningRate, weightDecay } = ctx.value;
  if (learningRate === undefined || weightDecay === undefined || learningRate * weightDecay < 1) return;
  ctx.issues.push({
    code: 'custom',
    path: ['weightDecay'],
    input: weightDecay,
    message: `must keep learningRate × weightDecay below 1, got ${learningRate} × ${weightDecay}`,
  });
}

/** All of them, as trainHead takes them. */
export const HeadHyperparametersSchema = object(HEAD_HYPERPARAMETERS).check(checkDecayStep);

export type HeadHyperparameters = z.output<typeof HeadHyperparametersSchema>;
