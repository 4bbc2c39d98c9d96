import type { EventLog } from '../local/step-functions.ts';
import type { LogSink } from '../log.ts';

// Terminal progress for a run: one line per state start and end, Map shards as they finish,
// and the core's log lines indented beneath the state that wrote them.

/** Task and Map states get lines; Pass, Choice and terminal states are plumbing. */
const SHOWN = new Set(['Task', 'Map', 'Parallel']);

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

export class Progress {
  private readonly started = new Map<string, number>();
  private readonly maps = new Map<string, { items: unknown[]; done: number }>();

  /**
   * @param itemsOf the items a Map state fans out over, found in its input
   * @param describeItem how one item is named in a progress line
   */
  constructor(
    private readonly write: (line: string) => void,
    private readonly itemsOf: (mapState: string, input: unknown) => unknown[],
    private readonly describeItem: (item: unknown, index: number) => string,
  ) {}

  onEvent = (e: EventLog): void => {
    switch (e.type) {
      case 'StateEntered':
        if (e.index !== undefined || !SHOWN.has(e.state.type)) return;
        this.started.set(e.state.name, e.timestamp);
        if (e.state.type === 'Map') {
          const items = this.itemsOf(e.state.name, e.state.input);
          this.maps.set(e.state.name, { items, done: 0 });
          this.write(`▶ ${e.state.name} (${items.length} shard${items.length === 1 ? '' : 's'})`);
        } else this.write(`▶ ${e.state.name}`);
        return;
      case 'StateExited': {
        if (e.index !== undefined || !SHOWN.has(e.state.type)) return;
        const took = seconds(e.timestamp - (this.started.get(e.state.name) ?? e.timestamp));
        this.write(`✔ ${e.state.name} ${took}`);
        return;
      }
      case 'StateFailed': {
        if (e.index !== undefined || e.state.type === 'Fail') return;
        const took = seconds(e.timestamp - (this.started.get(e.state.name) ?? e.timestamp));
        this.write(`✖ ${e.state.name} failed ${took}: ${e.Error}: ${String(e.Cause)}`);
        return;
      }
      case 'StateRetried':
        this.write(`  ↻ ${e.state.name} retry ${e.retry.attempt}`);
        return;
      case 'MapIterationSucceeded':
      case 'MapIterationFailed': {
        const m = this.maps.get(e.parentState.name);
        if (!m) return;
        m.done++;
        const verdict = e.type === 'MapIterationSucceeded' ? 'done' : `failed: ${String(e.Cause)}`;
        const what = this.describeItem(m.items[e.index], e.index);
        this.write(`  [${m.done}/${m.items.length}] ${what} ${verdict}`);
        return;
      }
      default:
        return;
    }
  };

  logSink: LogSink = (level, message) => {
    if (level === 'debug') return;
    this.write(`  ${level === 'info' ? '·' : level === 'warn' ? '!' : '✖'} ${message}`);
  };
}
