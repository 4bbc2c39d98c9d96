// report.html: one self-contained page (inline CSS, JS and images; a CSP that forbids fetching
// anything) for a person to judge a run: verdicts, headline figures, training curves, the worst
// classes with misclassified images, the confusion matrix and every class's figures.

import { CLASS_TABLE_SCRIPT, classTable } from './class-table.ts';
import { trainingCurves } from './curves.ts';
import { html, rawHtml } from './escape.ts';
import { classNames, HEATMAP_SCRIPT, heatmap, mostConfusedTable } from './heatmap.ts';
import { STYLES } from './styles.ts';
import { headline, identity, runDetails, verdict } from './summary.ts';
import type { ReportHtmlInput } from './types.ts';
import { worstClassesSection } from './worst-classes.ts';

export type { EpochRecord, ReportHtmlInput, ReportThumbnail, TrainingRecord } from './types.ts';
/** The classes the report shows as worst: pick thumbnails for these. */
export { worstClasses } from './worst-classes.ts';

/** Nothing may be loaded from anywhere: the report must read the same offline and in ten years. */
const CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'";

/**
 * Records script errors in #render-errors and sets <body data-render> to "ok" once every script
 * ran cleanly (else "error"): a person sees why a chart is missing, and tests read the marker.
 */
const STATUS_SCRIPT = `(function () {
  var errors = [];
  function show() {
    var box = document.getElementById('render-errors');
    if (box) { box.textContent = 'This page\\'s script failed:\\n' + errors.join('\\n'); box.hidden = false; }
    if (document.body) document.body.setAttribute('data-render', 'error');
  }
  window.addEventListener('error', function (e) {
    errors.push(e.message + ' (line ' + e.lineno + ')');
    show();
  });
  window.addEventListener('unhandledrejection', function (e) {
    errors.push('unhandled rejection: ' + e.reason);
    show();
  });
  window.reportReady = function () {
    if (errors.length) show();
    else document.body.setAttribute('data-render', 'ok');
  };
})();`;

const script = (code: string) => rawHtml(`<script>${code}</script>`);

export function renderReportHtml(input: ReportHtmlInput): string {
  const { metrics: m, training } = input;
  const thumbnails = input.thumbnails ?? [];
  const n = m.confusion.length;
  const breeds = classNames(m.perClass, n);
  // Class folder names and breeds both resolve to the breed people read.
  const names = new Map<string, string>();
  for (const c of m.perClass) names.set(c.class, c.breed).set(c.breed, c.breed);
  const cm = heatmap(m.perClass, m.confusion, mostConfusedTable(m.mostConfused, names));
  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dog-breed model report — ${m.runId}</title>
<style>${rawHtml(STYLES)}</style>
${script(STATUS_SCRIPT)}
</head>
<body data-render="pending">
<main>
<header>
<h1>Dog-breed model report</h1>
<p class="note">Run <strong>${m.runId}</strong> · test split of ${m.dataset.datasetId} · ${m.createdAt}</p>
</header>
<pre id="render-errors" hidden></pre>
<section id="verdict">${verdict(m)}</section>
<section id="headline"><h2>Headline figures (test split)</h2>${headline(m)}</section>
<section id="identity-section"><h2>Model and data</h2>${identity(m, training)}</section>
${training ? html`<section id="training"><h2>Training curves</h2>${trainingCurves(training)}</section>` : undefined}
<section id="worst"><h2>Worst classes (lowest F1)</h2>${worstClassesSection(m.perClass, m.confusion, breeds, thumbnails, names)}</section>
<section id="confusion"><h2>Confusion matrix</h2>${cm.section}</section>
<section id="classes"><h2>Per-class results</h2>${classTable(m.perClass)}</section>
<section id="details"><h2>Run details</h2>${runDetails(m, training)}</section>
</main>
${cm.data}
${script(CLASS_TABLE_SCRIPT)}
${script(HEATMAP_SCRIPT)}
${script('window.reportReady();')}
</body>
</html>
`;
  return page.value;
}
