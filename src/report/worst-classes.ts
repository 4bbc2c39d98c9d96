// The classes the model does worst on (lowest F1), each with what it is mistaken for and the
// misclassified test images given for it: where a person looks first to see why.

import type { ClassMetrics } from '../metrics/types.ts';
import { type Html, html } from './escape.ts';
import { count, decimal, percent } from './format.ts';
import type { ReportThumbnail } from './types.ts';

const WORST_CLASSES = 10;
/** Mistakes named per worst class. */
const TAKEN_FOR = 3;

/** Lowest F1 first (ties: more test images, then class index); classes without test images say nothing. */
export function worstClasses(perClass: ClassMetrics[], n = WORST_CLASSES): ClassMetrics[] {
  return perClass
    .filter((c) => c.support > 0)
    .sort((a, b) => a.f1 - b.f1 || b.support - a.support || a.index - b.index)
    .slice(0, n);
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function thumbnail(t: ReportThumbnail, names: Map<string, string>): Html {
  const data = t.jpegBase64.replace(/\s+/g, '');
  if (!BASE64.test(data)) throw new Error(`thumbnail ${t.id}: jpegBase64 is not base64`);
  const actual = names.get(t.actual) ?? t.actual;
  const predicted = names.get(t.predicted) ?? t.predicted;
  return html`<figure class="thumb" data-id="${t.id}"><img src="data:image/jpeg;base64,${data}" alt="test image ${t.id}: ${actual} taken for ${predicted}"><figcaption><span class="actual">actual: ${actual}</span><span class="predicted">predicted: ${predicted}</span><span class="probability">p = ${percent(t.probability)}</span></figcaption></figure>`;
}

function takenFor(c: ClassMetrics, confusion: number[][], breeds: string[]): Html {
  const row = confusion[c.index] ?? [];
  const mistakes = row
    .map((v, j) => ({ j, v }))
    .filter((x) => x.j !== c.index && x.v > 0)
    .sort((a, b) => b.v - a.v || a.j - b.j)
    .slice(0, TAKEN_FOR)
    .map((x) => html`<li>${breeds[x.j] ?? `class ${x.j}`} (${x.v})</li>`);
  return mistakes.length
    ? html`<p>Most often taken for:</p><ul class="taken-for">${mistakes}</ul>`
    : html`<p>Never taken for another class.</p>`;
}

export function worstClassesSection(
  perClass: ClassMetrics[],
  confusion: number[][],
  breeds: string[],
  thumbnails: ReportThumbnail[],
  names: Map<string, string>,
): Html {
  const worst = worstClasses(perClass);
  const isOf = (t: ReportThumbnail, c: ClassMetrics) => t.actual === c.class || t.actual === c.breed;
  const cards = worst.map((c) => {
    const thumbs = thumbnails.filter((t) => isOf(t, c)).map((t) => thumbnail(t, names));
    return html`<article class="worst" data-index="${c.index}">
<h3>${c.breed} <span class="class-id">${c.class}</span></h3>
<p class="figures-line">F1 <strong>${decimal(c.f1)}</strong> · precision ${decimal(c.precision)} · recall ${decimal(c.recall)} · ${count(c.support)} test images</p>
${takenFor(c, confusion, breeds)}
${thumbs.length ? html`<div class="thumbs">${thumbs}</div>` : undefined}
</article>`;
  });
  // Thumbnails of classes outside the worst ten are still shown: they were given for a reason.
  const others = thumbnails.filter((t) => !worst.some((c) => isOf(t, c))).map((t) => thumbnail(t, names));
  return html`<div class="worst-list">${cards}</div>
${others.length ? html`<h3>Other misclassified test images</h3><div class="thumbs" id="other-thumbs">${others}</div>` : undefined}`;
}
