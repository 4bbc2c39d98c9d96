// The confusion matrix as a heatmap on a <canvas>: 120 × 120 cells are too many for a table or
// SVG to stay light and legible. Cells are coloured by the share of the actual class's images
// (row-normalised), rows and columns in class-index order; hovering names the cell, a toggle keeps
// only the strongest confusions (diagonal hidden, scale stretched to them), and cell size zooms.

import type { ClassMetrics, ConfusedPair } from '../metrics/types.ts';
import { type Html, html, jsonForScript, rawHtml } from './escape.ts';
import { count, percent } from './format.ts';

/** Light yellow → dark red/purple: any non-zero cell stands out from the white of zero. */
export const COLOUR_STOPS: readonly (readonly [number, number, number])[] = [
  [255, 237, 160],
  [254, 178, 76],
  [240, 59, 32],
  [189, 0, 38],
  [84, 0, 72],
];

/** How many off-diagonal cells "top confusions only" keeps. */
const TOP_CONFUSIONS = 50;
/** Rows of the most-confused table; metrics.json may list more. */
const MOST_CONFUSED_ROWS = 50;
const CELL_SIZES = [4, 6, 10, 16, 24];

/** Breed names by class index; a class missing from perClass still gets a name. */
export function classNames(perClass: ClassMetrics[], n: number): string[] {
  const names = Array.from({ length: n }, (_, i) => `class ${i}`);
  for (const c of perClass) if (c.index >= 0 && c.index < n) names[c.index] = c.breed;
  return names;
}

function checkSquare(confusion: number[][]): void {
  const n = confusion.length;
  const bad = confusion.findIndex((r) => r.length !== n);
  if (bad >= 0)
    throw new Error(`confusion matrix is not square: row ${bad} has ${confusion[bad]!.length} of ${n} cells`);
}

/** The largest cell size that keeps the whole matrix about 720 px wide. */
function defaultCellSize(n: number): number {
  return CELL_SIZES.filter((s) => s * n <= 720).at(-1) ?? CELL_SIZES[0]!;
}

/** The heatmap with its controls, `aside` beside it (where the width allows), and its data block. */
export function heatmap(
  perClass: ClassMetrics[],
  confusion: number[][],
  aside: Html,
): { section: Html; data: Html } {
  checkSquare(confusion);
  const n = confusion.length;
  const cell = defaultCellSize(n);
  const options = CELL_SIZES.map(
    (s) => html`<option value="${s}"${s === cell ? html` selected` : undefined}>${s} px</option>`,
  );
  const gradient = `linear-gradient(to right, ${COLOUR_STOPS.map((c) => `rgb(${c.join(',')})`).join(', ')})`;
  const data = {
    classes: classNames(perClass, n),
    confusion,
    colourStops: COLOUR_STOPS,
    topConfusions: TOP_CONFUSIONS,
  };
  const section = html`<p class="note">Rows: actual class; columns: predicted class; both in class-index order (the # of the per-class table), with guides every 10 classes. Colour: share of the actual class's test images. Hover a cell for its counts.</p>
<div class="cm-tools">
<label>Cell size <select id="cm-zoom">${options}</select></label>
<label><input type="checkbox" id="cm-top"> Top ${TOP_CONFUSIONS} confusions only</label>
<span class="legend"><span id="cm-legend-lo">0%</span><span class="legend-bar" style="background:${gradient}"></span><span id="cm-legend-hi">100%</span><span class="note">of the actual class</span></span>
</div>
<div class="cm-layout">
<div><div class="cm-wrap"><canvas id="cm-canvas" role="img" aria-label="Confusion matrix heatmap, ${n} × ${n} classes"></canvas></div>
<noscript><p class="note">The heatmap needs JavaScript; the most confused pairs are listed too.</p></noscript></div>
<div class="cm-side">${aside}</div>
</div>
<div id="cm-tip" class="tooltip" role="tooltip" hidden></div>`;
  return {
    section,
    data: rawHtml(`<script type="application/json" id="report-data">${jsonForScript(data)}</script>`),
  };
}

export function mostConfusedTable(pairs: ConfusedPair[], names: Map<string, string>): Html {
  if (pairs.length === 0) return html`<p class="note">No class was taken for another.</p>`;
  const shown = pairs.slice(0, MOST_CONFUSED_ROWS);
  const rows = shown.map(
    (p) =>
      html`<tr><td>${names.get(p.actual) ?? p.actual}</td><td>${names.get(p.predicted) ?? p.predicted}</td><td class="num">${count(p.count)}</td><td class="num">${percent(p.rate)}</td></tr>`,
  );
  const more =
    pairs.length > shown.length
      ? html`<p class="note">The first ${shown.length} of ${pairs.length} pairs.</p>`
      : undefined;
  return html`<table id="most-confused" class="data"><caption>Most confused pairs</caption>
<thead><tr><th scope="col">Actual</th><th scope="col">Taken for</th><th scope="col" class="num" title="test images of the actual class taken for the other">Images</th><th scope="col" class="num" title="share of the actual class's test images">Share</th></tr></thead>
<tbody>${rows}</tbody></table>${more}`;
}

/** Draws #cm-canvas from #report-data; exposes its geometry as data-cell / data-margin (CSS px). */
export const HEATMAP_SCRIPT = `(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var names = data.classes;
  var m = data.confusion;
  var n = names.length;
  var stops = data.colourStops;
  var MARGIN = 30;
  var canvas = document.getElementById('cm-canvas');
  var ctx = canvas.getContext('2d');
  var zoom = document.getElementById('cm-zoom');
  var topOnly = document.getElementById('cm-top');
  var tip = document.getElementById('cm-tip');
  var legendHi = document.getElementById('cm-legend-hi');

  var rowSum = m.map(function (r) { return r.reduce(function (a, b) { return a + b; }, 0); });
  function rate(r, c) { return rowSum[r] ? m[r][c] / rowSum[r] : 0; }
  function pct(x) { return (x * 100).toFixed(1) + '%'; }

  // The strongest off-diagonal cells by share of the actual class, then by count.
  var top = [];
  for (var r = 0; r < n; r++) for (var c = 0; c < n; c++) if (r !== c && m[r][c] > 0) top.push([r, c]);
  top.sort(function (a, b) {
    return rate(b[0], b[1]) - rate(a[0], a[1]) || m[b[0]][b[1]] - m[a[0]][a[1]] || a[0] - b[0] || a[1] - b[1];
  });
  top = top.slice(0, data.topConfusions);
  var topSet = new Set(top.map(function (p) { return p[0] * n + p[1]; }));
  var topMax = top.length ? rate(top[0][0], top[0][1]) : 1;

  function colour(t) {
    t = Math.max(0, Math.min(1, t));
    var seg = t * (stops.length - 1);
    var i = Math.min(Math.floor(seg), stops.length - 2);
    var f = seg - i;
    var a = stops[i];
    var b = stops[i + 1];
    return 'rgb(' + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); }).join(',') + ')';
  }

  function draw() {
    var cell = Number(zoom.value);
    var only = topOnly.checked;
    var size = MARGIN + n * cell;
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(size * dpr);
    canvas.height = Math.round(size * dpr);
    canvas.style.width = size + 'px';
    canvas.style.height = size + 'px';
    canvas.setAttribute('data-cell', String(cell));
    canvas.setAttribute('data-margin', String(MARGIN));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, size, size);
    var scale = only ? topMax : 1;
    for (var r = 0; r < n; r++) {
      for (var c = 0; c < n; c++) {
        if (!m[r][c] || (only && !topSet.has(r * n + c))) continue;
        ctx.fillStyle = colour(rate(r, c) / scale);
        ctx.fillRect(MARGIN + c * cell, MARGIN + r * cell, cell, cell);
      }
    }
    ctx.strokeStyle = 'rgba(0,0,0,0.15)';
    ctx.lineWidth = 1;
    ctx.fillStyle = '#555';
    ctx.font = '10px system-ui, sans-serif';
    for (var k = 0; k <= n; k += 10) {
      var p = MARGIN + k * cell;
      ctx.beginPath();
      ctx.moveTo(p, MARGIN); ctx.lineTo(p, size);
      ctx.moveTo(MARGIN, p); ctx.lineTo(size, p);
      ctx.stroke();
      if (k === n) continue;
      ctx.textAlign = 'left';
      ctx.fillText(String(k), p + 2, MARGIN - 8);
      ctx.textAlign = 'right';
      ctx.fillText(String(k), MARGIN - 4, p + 10);
    }
    ctx.strokeRect(MARGIN, MARGIN, n * cell, n * cell);
    legendHi.textContent = only ? pct(topMax) : '100%';
  }

  function hover(e) {
    var box = canvas.getBoundingClientRect();
    var cell = Number(zoom.value);
    var c = Math.floor((e.clientX - box.left - MARGIN) / cell);
    var r = Math.floor((e.clientY - box.top - MARGIN) / cell);
    if (r < 0 || c < 0 || r >= n || c >= n) { tip.hidden = true; return; }
    tip.textContent = names[r] + ' \\u2192 ' + names[c] + ': ' + m[r][c] + ' (' + pct(rate(r, c)) + ' of ' + rowSum[r] + ')';
    tip.hidden = false;
    var x = e.clientX + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = e.clientX - 14 - tip.offsetWidth;
    tip.style.left = x + 'px';
    tip.style.top = e.clientY + 14 + 'px';
  }

  canvas.addEventListener('mousemove', hover);
  canvas.addEventListener('mouseleave', function () { tip.hidden = true; });
  zoom.addEventListener('change', draw);
  topOnly.addEventListener('change', draw);
  draw();
})();`;
