import { keys } from './layout.ts';
import type { ObjectStore } from './object-store.ts';

// models/current.json: which run's model serves uploads. WriteReport replaces it when a run is
// promoted; upload classification, `dogbreed runs` and `evaluate --model champion` read it.

export interface Champion {
  runId: string;
  modelKey: string;
  modelSha256: string;
  macroF1: number;
  accuracy: number;
  metricsKey: string;
  promotedAt: string;
}

/** The current champion, or undefined before any run was promoted. */
export function readChampion(store: ObjectStore): Promise<Champion | undefined> {
  return store.getJsonIfExists<Champion>(keys.champion());
}

/** One PUT replaces the pointer whole; the models it points to are never overwritten. */
export async function writeChampion(store: ObjectStore, champion: Champion): Promise<void> {
  await store.putJson(keys.champion(), champion);
}
