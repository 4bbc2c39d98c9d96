import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ResizeShorterSchema } from '../config.ts';
import { InputError } from '../errors.ts';
import type { ClassMetrics, MetricsReport } from '../metrics/types.ts';
import { evaluateModel } from '../queries/evaluate.ts';
import { listRuns, readRun, resolveRunId } from '../queries/runs.ts';
import { object } from '../schema/fields.ts';
import { keys } from '../storage/layout.ts';
import { decimal, parseFlags } from './flags.ts';
import { withStore } from './workspace.ts';

// `dogbreed runs | report | compare | evaluate`: reading what runs produced.

type Out = (line: string) => void;

/** Which bucket: the workspace's local one, or a deployed stage's. */
export const TARGET_OPTIONS = {
  workspace: { type: 'string' },
  stage: { type: 'string' },
  region: { type: 'string' },
} as const;
const f3 = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(3));
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;

export function printMetrics(m: MetricsReport, out: Out): void {
  out(
    `run ${m.runId} · dataset ${m.dataset.datasetId} · model ${m.model.backbone} (best epoch ${m.model.bestEpoch})`,
  );
  out(`test images ${m.counts.test} · classes ${m.counts.classes}`);
  out('');
  out(`accuracy   ${f3(m.accuracy)}    top-5      ${f3(m.top5Accuracy)}    log loss ${f3(m.logLoss)}`);
  for (const [name, prf] of [
    ['micro', m.micro],
    ['macro', m.macro],
    ['weighted', m.weighted],
  ] as const) {
    out(`${name.padEnd(10)} precision ${f3(prf.precision)}  recall ${f3(prf.recall)}  F1 ${f3(prf.f1)}`);
  }
  out('');
  out(`gate       ${m.gate.passed ? 'passed' : 'FAILED'}: ${m.gate.reasons.join('; ')}`);
  out(`champion   ${m.promotion.reason}`);
  const worst = [...m.perClass].sort((a, b) => a.f1 - b.f1).slice(0, 5);
  out('');
  out('worst classes (F1):');
  for (const c of worst)
    out(
      `  ${c.breed.padEnd(32)} ${f3(c.f1)}  (precision ${f3(c.precision)}, recall ${f3(c.recall)}, support ${c.support})`,
    );
  if (m.mostConfused.length > 0) {
    out('most confused:');
    for (const p of m.mostConfused.slice(0, 5))
      out(`  ${p.actual} → ${p.predicted}: ${p.count} (${(p.rate * 100).toFixed(0)}%)`);
  }
}

export async function runsCommand(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...TARGET_OPTIONS, json: { type: 'boolean' } },
  });
  const rows = await withStore(values, listRuns);
  if (values.json) {
    out(JSON.stringify(rows, null, 2));
    return 0;
  }
  if (rows.length === 0) {
    out('no runs yet: start one with `dogbreed run`');
    return 0;
  }
  out(
    `${'run'.padEnd(24)} ${'started'.padEnd(20)} ${'status'.padEnd(10)} ${'dataset'.padEnd(16)} accuracy  macro-F1`,
  );
  for (const r of rows) {
    out(
      `${(r.champion ? `★ ${r.runId}` : `  ${r.runId}`).padEnd(24)} ${(r.startedAt ?? '—').padEnd(20)} ${r.status.padEnd(10)} ${(r.datasetId ?? '—').padEnd(16)} ${f3(r.accuracy).padEnd(9)} ${f3(r.macroF1)}`,
    );
  }
  if (rows.some((r) => r.champion)) out('★ the champion: its model serves uploads');
  const resumable = rows.filter((r) => r.status === 'interrupted' || r.status === 'failed');
  for (const r of resumable.slice(0, 3)) {
    out(`${r.status} run ${r.runId}: \`dogbreed resume ${r.runId}\` continues it from where it stopped`);
  }
  return 0;
}

export async function reportCommand(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...TARGET_OPTIONS, json: { type: 'boolean' }, html: { type: 'string' } },
  });
  return withStore(values, async (store) => {
    const runId = await resolveRunId(store, positionals[0] ?? 'latest');
    const run = await readRun(store, runId);
    if (run.status === 'failed') {
      out(`run ${runId} failed in ${run.failure.state}: ${run.failure.error}: ${run.failure.cause}`);
      out(JSON.stringify(run.failure, null, 2));
      return 1;
    }
    if (run.status !== 'succeeded') {
      out(
        run.status === 'interrupted'
          ? `run ${runId} was interrupted before its report: \`dogbreed resume ${runId}\` continues it`
          : `run ${runId} has no report yet: it is still running, or stopped before WriteReport`,
      );
      return 1;
    }
    if (values.html) {
      const file = resolve(values.html);
      await writeFile(file, await store.getBytes(keys.reportHtml(runId)));
      out(`wrote ${file}`);
    } else if (values.json) out(JSON.stringify(run.metrics, null, 2));
    else printMetrics(run.metrics, out);
    return 0;
  });
}

export async function compareCommand(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...TARGET_OPTIONS, json: { type: 'boolean' } },
  });
  if (positionals.length !== 2)
    throw new InputError('compare takes two run ids: dogbreed compare RUN_A RUN_B');
  return withStore(values, async (store) => {
    const runs = [];
    for (const ref of positionals) {
      const run = await readRun(store, await resolveRunId(store, ref));
      if (run.status !== 'succeeded')
        throw new InputError(`run ${run.runId} has no metrics (${run.status}): nothing to compare`);
      runs.push(run.metrics);
    }
    const [a, b] = runs as [MetricsReport, MetricsReport];
    const rows: [string, number, number][] = [
      ['accuracy', a.accuracy, b.accuracy],
      ['top-5 accuracy', a.top5Accuracy, b.top5Accuracy],
      ['macro precision', a.macro.precision, b.macro.precision],
      ['macro recall', a.macro.recall, b.macro.recall],
      ['macro F1', a.macro.f1, b.macro.f1],
      ['weighted F1', a.weighted.f1, b.weighted.f1],
      ['log loss', a.logLoss, b.logLoss],
    ];
    const byClass = new Map<string, ClassMetrics>(a.perClass.map((c) => [c.class, c]));
    const changed = b.perClass
      .filter((c) => byClass.has(c.class))
      .map((c) => ({
        breed: c.breed,
        a: byClass.get(c.class)!.f1,
        b: c.f1,
        delta: c.f1 - byClass.get(c.class)!.f1,
      }))
      .sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta))
      .slice(0, 10);
    if (values.json) {
      out(
        JSON.stringify(
          {
            a: a.runId,
            b: b.runId,
            metrics: rows.map(([name, x, y]) => ({ name, a: x, b: y, delta: y - x })),
            classesChangedMost: changed,
          },
          null,
          2,
        ),
      );
      return 0;
    }
    out(`${'metric'.padEnd(18)} ${a.runId.padEnd(24)} ${b.runId.padEnd(24)} delta`);
    for (const [name, x, y] of rows)
      out(`${name.padEnd(18)} ${f3(x).padEnd(24)} ${f3(y).padEnd(24)} ${signed(y - x)}`);
    if (a.dataset.sha256 !== b.dataset.sha256)
      out('note: the runs used different datasets, so their test splits differ');
    out('');
    out('classes whose F1 changed most:');
    for (const c of changed) out(`  ${c.breed.padEnd(32)} ${f3(c.a)} → ${f3(c.b)}  (${signed(c.delta)})`);
    return 0;
  });
}

const EvaluateOptionsSchema = object({ resizeShorter: ResizeShorterSchema.optional() });
const EVALUATE_FLAGS = { resize: { path: ['resizeShorter'], read: decimal } };

export async function evaluateCommand(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      ...TARGET_OPTIONS,
      resize: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (!values.model)
    throw new InputError('--model is required: a model.onnx path, s3:// URL, run id, or "champion"');
  if (positionals.length !== 1)
    throw new InputError('evaluate takes one ImageFolder directory or tarball to evaluate on');
  const { resizeShorter } = parseFlags(EvaluateOptionsSchema, values, EVALUATE_FLAGS);
  const source = /^[a-z][a-z0-9+.-]*:\/\//i.test(positionals[0]!)
    ? positionals[0]!
    : resolve(positionals[0]!);
  const model =
    values.model === 'champion' || /^s3:\/\//.test(values.model) || !values.model.endsWith('.onnx')
      ? values.model
      : resolve(values.model);
  const result = await withStore(values, (store) => evaluateModel(store, { model, source, resizeShorter }));
  if (values.json) {
    out(JSON.stringify(result, null, 2));
    return 0;
  }
  const m = result.metrics;
  out(
    `model ${result.model.source} (sha256 ${result.model.sha256.slice(0, 12)}…) on ${source}: ${result.images} images`,
  );
  out(
    `accuracy ${f3(m.accuracy)} · top-5 ${f3(m.top5Accuracy)} · macro F1 ${f3(m.macro.f1)} · weighted F1 ${f3(m.weighted.f1)} · log loss ${f3(m.logLoss)}`,
  );
  return 0;
}
