import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { MiddlewareObj } from '@middy/core';
import { setLogSink } from '../../src/log.ts';
import { onLambda as onLambdaNow } from './on-lambda.ts';

// Logs and metrics of the functions on Lambda, through Powertools: one JSON line per log entry
// with the invocation's request id, cold start and run id; metrics as CloudWatch embedded metric
// format (EMF) documents on stdout, which Lambda's log agent turns into metrics (no API call, no
// IAM). Service, namespace and level come from the environment (serverless.yml):
// POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL.
//
// The local runtime calls the same handlers in-process and shows the core's log lines in its
// progress display: there the log sink is left alone and no metric is emitted, so nothing lands
// on the terminal's stdout.

/** Decided once: the Lambda runtime sets its environment before it loads the handler's module. */
const onLambda = onLambdaNow();

const lambdaLogger = new Logger();
// Metrics' own warnings (an invocation that failed before it measured anything) are log lines too.
const metrics = new Metrics({ logger: lambdaLogger });

// The core logs through src/log.ts; on Lambda its lines go out through Powertools with the same keys.
if (onLambda) setLogSink((level, message, fields) => lambdaLogger[level](message, fields));

/** One figure of an invocation, as CloudWatch stores it. */
export interface Figure {
  name: string;
  unit: (typeof MetricUnit)[keyof typeof MetricUnit];
  value: number;
}

export const count = (name: string, value: number): Figure => ({ name, unit: MetricUnit.Count, value });
export const milliseconds = (name: string, value: number): Figure => ({
  name,
  unit: MetricUnit.Milliseconds,
  value,
});
/** A share between 0 and 1 (accuracy, F1), as in metrics.json. */
export const ratio = (name: string, value: number): Figure => ({ name, unit: MetricUnit.NoUnit, value });

/**
 * The middlewares a handler uses on Lambda (none elsewhere): the invocation's context on every
 * log line, reset after it; with `metrics`, the figures recorded by `record` published when the
 * invocation ends (and a ColdStart metric), both whether it succeeds or fails.
 */
export function lambdaTelemetry(opts: { metrics: boolean }): MiddlewareObj[] {
  if (!onLambda) return [];
  const context = injectLambdaContext(lambdaLogger, { resetKeys: true });
  return opts.metrics ? [context, logMetrics(metrics, { captureColdStartMetric: true })] : [context];
}

/** Adds keys to every log line of this invocation (the run id, once the event is parsed). */
export function appendLogKeys(keys: Record<string, string>): void {
  if (onLambda) lambdaLogger.appendKeys(keys);
}

/** Records this invocation's figures, with the state (or function) that measured them as dimension. */
export function record(state: string, figures: Figure[]): void {
  if (!onLambda) return;
  metrics.addDimension('state', state);
  for (const f of figures) metrics.addMetric(f.name, f.unit, f.value);
}
