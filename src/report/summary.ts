// The top of the report: which model and data this is, whether it passed the quality gate and was
// promoted, and the headline figures.

import type { BackboneCard, MetricsReport } from '../metrics/types.ts';
import { type Html, html } from './escape.ts';
import { count, decimal, duration, percent, shortSha } from './format.ts';
import type { TrainingRecord } from './types.ts';

export function identity(m: MetricsReport, training: TrainingRecord | undefined): Html {
  const row = (label: string, value: string | Html, title?: string) =>
    html`<div><dt>${label}</dt><dd${title ? html` title="${title}"` : undefined}>${value}</dd></div>`;
  return html`<dl class="identity">
${row('Run', m.runId)}
${row('Created', m.createdAt)}
${row('Model', html`<code>${shortSha(m.model.sha256)}</code> from run ${m.model.runId}`, m.model.sha256)}
${row('Backbone', m.model.backbone)}
${(m.model.backbones ?? []).map((b, i) => row(`Backbone ${i + 1}`, backboneCard(b), b.sha256))}
${row('Best epoch', `${m.model.bestEpoch} (validation accuracy ${percent(m.model.valAccuracy)})`)}
${m.model.head ? row('Head', `${m.model.head}, chosen on validation accuracy`) : undefined}
${
  m.model.zeroShotValAccuracy !== undefined
    ? row(
        'Zero-shot',
        `${percent(m.model.zeroShotValAccuracy)} validation accuracy from the backbones' own ImageNet classifiers (trained head: ${percent(m.model.valAccuracy)})`,
      )
    : undefined
}
${training ? row('Training backend', training.backend) : undefined}
${row('Dataset', html`${m.dataset.datasetId} <code>${shortSha(m.dataset.sha256)}</code>`, m.dataset.sha256)}
${row('Model object', html`<code>${m.model.key}</code>`)}
</dl>`;
}

/** A backbone on the model card: its file's sha256, width, and what it scores alone on val. */
function backboneCard(b: BackboneCard): Html {
  const zeroShot = b.zeroShotValAccuracy !== undefined ? `, zero-shot ${percent(b.zeroShotValAccuracy)}` : '';
  const start = b.initReason ? ` · head started from random weights: ${b.initReason}` : '';
  return html`${b.source} <code>sha256 ${b.sha256}</code> · ${count(b.featureDim)} features · alone: val ${percent(b.valAccuracy)}${zeroShot}${start}`;
}

export function verdict(m: MetricsReport): Html {
  const gate = m.gate.passed ? 'passed' : 'failed';
  const promoted = m.promotion.promoted ? 'promoted' : 'not-promoted';
  const reasons = m.gate.reasons.map((r) => html`<li>${r}</li>`);
  const previous = m.promotion.previousChampion
    ? html`<p class="note">Previous champion: ${m.promotion.previousChampion}</p>`
    : undefined;
  return html`<div class="verdicts">
<div class="verdict ${gate}" id="gate" data-passed="${String(m.gate.passed)}">
<h2>Quality gate: <span class="badge">${m.gate.passed ? 'PASSED' : 'FAILED'}</span></h2>
<ul class="reasons">${reasons}</ul>
</div>
<div class="verdict ${promoted}" id="promotion" data-promoted="${String(m.promotion.promoted)}">
<h2>Promotion: <span class="badge">${m.promotion.promoted ? 'PROMOTED' : 'NOT PROMOTED'}</span></h2>
<p class="reason">${m.promotion.reason}</p>${previous}
</div>
</div>`;
}

export function headline(m: MetricsReport): Html {
  const figure = (key: string, label: string, value: string, hint: string) =>
    html`<div class="figure" data-metric="${key}" title="${hint}"><span class="label">${label}</span><span class="value">${value}</span></div>`;
  return html`<div class="figures">
${figure('accuracy', 'Accuracy', percent(m.accuracy), 'top-1 accuracy on the test split')}
${figure('top5', 'Top-5 accuracy', percent(m.top5Accuracy), 'true class among the five most probable')}
${figure('macro-f1', 'Macro F1', decimal(m.macro.f1), 'F1 averaged over classes, each counting the same')}
${figure('weighted-f1', 'Weighted F1', decimal(m.weighted.f1), 'F1 averaged over classes, weighted by support')}
${figure('macro-precision', 'Macro precision', decimal(m.macro.precision), 'precision averaged over classes')}
${figure('macro-recall', 'Macro recall', decimal(m.macro.recall), 'recall averaged over classes')}
${figure('log-loss', 'Log loss', decimal(m.logLoss), 'mean −log p(true class); lower is better')}
${figure('test', 'Test images', count(m.counts.test), 'images in the test split')}
${figure('train', 'Train images', count(m.counts.train), 'images in the train split')}
${figure('val', 'Validation images', count(m.counts.val), 'images in the validation split')}
${figure('classes', 'Classes', count(m.counts.classes), 'breeds the model tells apart')}
</div>`;
}

function display(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
}

/** Hyperparameters and timings: small tables for whoever wants to reproduce or compare the run. */
export function runDetails(m: MetricsReport, training: TrainingRecord | undefined): Html {
  const hyper = Object.entries(training?.hyperparameters ?? {}).map(
    ([k, v]) => html`<tr><th scope="row">${k}</th><td><code>${display(v)}</code></td></tr>`,
  );
  const timings = Object.entries(m.timings).map(
    ([k, v]) => html`<tr><th scope="row">${k}</th><td class="num">${duration(v)}</td></tr>`,
  );
  return html`<div class="details">
${hyper.length ? html`<table class="data kv" id="hyperparameters"><caption>Hyperparameters</caption><tbody>${hyper}</tbody></table>` : undefined}
${timings.length ? html`<table class="data kv" id="timings"><caption>Timings</caption><tbody>${timings}</tbody></table>` : undefined}
</div>`;
}
