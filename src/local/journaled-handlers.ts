import { asLocalRuntime } from '../storage/call-log.ts';
import { appendResume, recordedResult, recordResult } from '../storage/execution-journal.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { LocalHandler } from './step-functions.ts';

// The Task handlers of a local run, journaled: each result is recorded after the Task
// succeeds, and on resume a Task whose input has a recorded result returns it instead of
// running again. The state machine itself runs unchanged from its start, so states that
// succeeded are passed through with their recorded outputs and the run continues from the
// first Task that has none (inside a Map: just the items that have none).

export interface JournalState {
  /** Set on resume: the top-level state the run continued from. */
  fromState?: string;
  reusedTasks: number;
}

/** Inner states of Map states → the Map that runs them, so a resume is named by the top-level state. */
export function topLevelStates(definition: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  const states = (definition.States ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, state] of Object.entries(states)) {
    out.set(name, name);
    const inner = (state.ItemProcessor ?? state.Iterator) as Record<string, unknown> | undefined;
    for (const innerName of inner ? topLevelStates(inner).keys() : []) out.set(innerName, name);
  }
  return out;
}

export function journaledHandlers(opts: {
  store: ObjectStore;
  runId: string;
  handlers: Record<string, LocalHandler>;
  definition: Record<string, unknown>;
  resume: boolean;
}): { handlers: Record<string, LocalHandler>; state: JournalState } {
  const { store, runId } = opts;
  const parents = topLevelStates(opts.definition);
  const state: JournalState = { reusedTasks: 0 };
  let resumeRecorded: Promise<void> | undefined;
  const wrap = (name: string, handler: LocalHandler): LocalHandler => {
    return async (event, context) => {
      if (opts.resume) {
        const recorded = await asLocalRuntime(() => recordedResult(store, runId, name, event));
        if (recorded) {
          state.reusedTasks++;
          return recorded.output;
        }
      }
      if (opts.resume) {
        state.fromState ??= parents.get(name) ?? name;
        const fromState = state.fromState;
        // Written before the rest runs, so WriteReport can say the run was resumed.
        resumeRecorded ??= asLocalRuntime(() =>
          appendResume(store, runId, { at: new Date().toISOString(), fromState, how: 'local' }),
        );
        await resumeRecorded;
      }
      const output = await handler(event, context);
      await asLocalRuntime(() => recordResult(store, runId, name, event, output));
      return output;
    };
  };
  return {
    handlers: Object.fromEntries(Object.entries(opts.handlers).map(([n, h]) => [n, wrap(n, h)])),
    state,
  };
}
