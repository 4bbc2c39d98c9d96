// One shared logger. By default it writes JSON lines to stderr (the Batch container's log, what
// CloudWatch indexes); on Lambda the functions route it to Powertools' logger, so core lines
// carry the invocation's keys (functions/lib/telemetry.ts); the local runtime swaps the sink to
// feed its progress display.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | undefined>;
export type LogSink = (level: LogLevel, message: string, fields: LogFields) => void;

const jsonSink: LogSink = (level, message, fields) => {
  if (level === 'debug' && !process.env.DOGBREED_DEBUG) return;
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...fields })}\n`);
};

let sink: LogSink = jsonSink;

export const logger = {
  debug: (message: string, fields: LogFields = {}) => sink('debug', message, fields),
  info: (message: string, fields: LogFields = {}) => sink('info', message, fields),
  warn: (message: string, fields: LogFields = {}) => sink('warn', message, fields),
  error: (message: string, fields: LogFields = {}) => sink('error', message, fields),
};

/** Replaces the sink (the local runtime does); returns a function that restores the previous one. */
export function setLogSink(next: LogSink): () => void {
  const prev = sink;
  sink = next;
  return () => {
    sink = prev;
  };
}
