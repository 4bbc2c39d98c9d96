// One shared logger. On Lambda and in the Batch container it writes JSON lines (what
// CloudWatch indexes); the local runtime swaps the sink to feed its progress display.

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
