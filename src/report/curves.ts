// Training curves as inline SVG (no script needed, prints well): loss and accuracy per epoch for
// the training and validation sets, with the best epoch (the weights kept) marked.

import { type Html, html } from './escape.ts';
import { decimal, percent } from './format.ts';
import type { EpochRecord, TrainingRecord } from './types.ts';

interface Series {
  name: string;
  /** CSS class that gives the colour and dash. */
  kind: 'train' | 'val';
  points: [number, number][];
}

interface ChartSpec {
  id: string;
  title: string;
  series: Series[];
  bestEpoch: number;
  scale: 'percent' | 'decimal';
}

const W = 540;
const H = 300;
const PAD = { left: 56, right: 18, top: 40, bottom: 42 };

/** Round tick step (1, 2 or 5 × 10^k) giving about `target` ticks over `span`. */
function niceStep(span: number, target: number): number {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

function yAxis(values: number[]): { lo: number; hi: number; step: number; ticks: number[] } {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  // A flat curve still needs a non-empty range to map onto.
  if (hi - lo < 1e-9) {
    const pad = Math.abs(hi) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, 5);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  // Index-based so float steps (0.1, 0.2…) do not drift.
  for (let i = 0; lo + i * step <= hi + step / 2; i++) ticks.push(lo + i * step);
  return { lo, hi, step, ticks };
}

function xAxis(epochs: number[]): { lo: number; hi: number; ticks: number[] } {
  const lo = Math.min(...epochs);
  const hi = Math.max(...epochs);
  const step = Math.max(1, Math.ceil((hi - lo) / 10));
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e += step) ticks.push(e);
  // One epoch alone is drawn in the middle of a one-epoch-wide axis.
  return hi === lo ? { lo: lo - 0.5, hi: hi + 0.5, ticks } : { lo, hi, ticks };
}

const f1 = (v: number) => Number(v.toFixed(1));

/** Tick labels with just enough decimals for the step; point values with a fixed precision. */
function formatters(
  scale: ChartSpec['scale'],
  step: number,
): { tick: (v: number) => string; value: (v: number) => string } {
  const unit = scale === 'percent' ? 100 : 1;
  const digits = Math.max(0, Math.ceil(-Math.log10(step * unit) - 1e-9));
  return scale === 'percent'
    ? { tick: (v) => percent(v, digits), value: (v) => percent(v, 1) }
    : { tick: (v) => decimal(v, digits), value: (v) => decimal(v, 3) };
}

function lineChart(spec: ChartSpec): Html {
  const all = spec.series.flatMap((s) => s.points);
  if (all.length === 0) return html`<p class="note">No ${spec.title.toLowerCase()} was recorded.</p>`;
  const x = xAxis(all.map((p) => p[0]));
  const y = yAxis(all.map((p) => p[1]));
  const fmt = formatters(spec.scale, y.step);
  const sx = (v: number) => f1(PAD.left + ((v - x.lo) / (x.hi - x.lo)) * (W - PAD.left - PAD.right));
  const sy = (v: number) => f1(H - PAD.bottom - ((v - y.lo) / (y.hi - y.lo)) * (H - PAD.top - PAD.bottom));
  const yTicks = y.ticks.map(
    (t) =>
      html`<g class="tick"><line x1="${PAD.left}" x2="${W - PAD.right}" y1="${sy(t)}" y2="${sy(t)}"/><text x="${PAD.left - 6}" y="${sy(t) + 4}" text-anchor="end">${fmt.tick(t)}</text></g>`,
  );
  const xTicks = x.ticks.map(
    (t) => html`<text class="tick" x="${sx(t)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${t}</text>`,
  );
  const lines = spec.series.map((s) => {
    const d = s.points.map(([ex, ey], i) => `${i ? 'L' : 'M'}${sx(ex)},${sy(ey)}`).join('');
    const dots = s.points.map(
      ([ex, ey]) =>
        html`<circle cx="${sx(ex)}" cy="${sy(ey)}" r="3"><title>epoch ${ex}: ${s.name} ${fmt.value(ey)}</title></circle>`,
    );
    return html`<g class="series series-${s.kind}"><path d="${d}"/>${dots}</g>`;
  });
  const legend = spec.series.map(
    (s, i) =>
      html`<g class="series series-${s.kind}" transform="translate(${PAD.left + i * 150},${PAD.top - 14})"><line x1="0" x2="22" y1="0" y2="0"/><text x="28" y="4">${s.name}</text></g>`,
  );
  const best = spec.bestEpoch >= x.lo && spec.bestEpoch <= x.hi;
  const marker = best
    ? html`<g class="best-epoch" data-epoch="${spec.bestEpoch}"><line x1="${sx(spec.bestEpoch)}" x2="${sx(spec.bestEpoch)}" y1="${PAD.top}" y2="${H - PAD.bottom}"/><text x="${sx(spec.bestEpoch) + 4}" y="${PAD.top + 12}">best epoch ${spec.bestEpoch}</text></g>`
    : undefined;
  return html`<figure class="chart"><svg id="${spec.id}" class="curve" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${spec.title} per epoch">
<text class="chart-title" x="${PAD.left}" y="16">${spec.title}</text>${yTicks}${xTicks}
<line class="axis" x1="${PAD.left}" x2="${W - PAD.right}" y1="${H - PAD.bottom}" y2="${H - PAD.bottom}"/>
<text class="axis-label" x="${(W + PAD.left) / 2}" y="${H - 6}" text-anchor="middle">epoch</text>
${marker}${lines}${legend}</svg></figure>`;
}

function finite(epochs: EpochRecord[], pick: (e: EpochRecord) => number): [number, number][] {
  return epochs.filter((e) => Number.isFinite(pick(e))).map((e) => [e.epoch, pick(e)]);
}

/** The loss and accuracy charts, or a note when training recorded no epochs. */
export function trainingCurves(training: TrainingRecord): Html {
  const epochs = training.epochs.filter((e) => Number.isFinite(e.epoch));
  if (epochs.length === 0) return html`<p class="note">Training recorded no epochs.</p>`;
  const loss = lineChart({
    id: 'curve-loss',
    title: 'Loss',
    bestEpoch: training.bestEpoch,
    scale: 'decimal',
    series: [
      { name: 'train loss', kind: 'train', points: finite(epochs, (e) => e.trainLoss) },
      { name: 'validation loss', kind: 'val', points: finite(epochs, (e) => e.valLoss) },
    ],
  });
  const accuracy = lineChart({
    id: 'curve-accuracy',
    title: 'Accuracy',
    bestEpoch: training.bestEpoch,
    scale: 'percent',
    series: [
      { name: 'train accuracy', kind: 'train', points: finite(epochs, (e) => e.trainAccuracy) },
      { name: 'validation accuracy', kind: 'val', points: finite(epochs, (e) => e.valAccuracy) },
    ],
  });
  return html`<div class="charts">${loss}${accuracy}</div>`;
}
