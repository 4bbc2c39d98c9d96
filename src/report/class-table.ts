// The per-class table: every class with its figures, sortable by any column and filterable by
// name. Rows are rendered here (readable without script); the page script only reorders and hides.

import type { ClassMetrics } from '../metrics/types.ts';
import { type Html, html } from './escape.ts';
import { count, decimal } from './format.ts';

type Key = 'index' | 'breed' | 'support' | 'precision' | 'recall' | 'f1' | 'predicted';

const COLUMNS: { key: Key; label: string; text?: boolean }[] = [
  { key: 'index', label: '#' },
  { key: 'breed', label: 'Breed', text: true },
  { key: 'support', label: 'Support' },
  { key: 'precision', label: 'Precision' },
  { key: 'recall', label: 'Recall' },
  { key: 'f1', label: 'F1' },
  { key: 'predicted', label: 'Predicted' },
];

/** A score cell with a bar behind it, so weak classes stand out while scrolling. */
function scoreCell(v: number): Html {
  const width = Number.isFinite(v) ? Math.max(0, Math.min(1, v)).toFixed(3) : '0';
  return html`<td class="num score" style="--v:${width}">${decimal(v)}</td>`;
}

function row(c: ClassMetrics): Html {
  return html`<tr data-index="${c.index}" data-breed="${c.breed}" data-search="${`${c.breed} ${c.class}`.toLowerCase()}" data-support="${c.support}" data-precision="${c.precision}" data-recall="${c.recall}" data-f1="${c.f1}" data-predicted="${c.predicted}">
<td class="num">${c.index}</td><td>${c.breed}<span class="class-id">${c.class}</span></td><td class="num">${count(c.support)}</td>${scoreCell(c.precision)}${scoreCell(c.recall)}${scoreCell(c.f1)}<td class="num">${count(c.predicted)}</td></tr>`;
}

export function classTable(perClass: ClassMetrics[]): Html {
  const rows = [...perClass].sort((a, b) => a.index - b.index).map(row);
  const heads = COLUMNS.map(
    (c) =>
      html`<th scope="col"${c.text ? undefined : html` class="num"`} data-key="${c.key}" data-type="${c.text ? 'text' : 'num'}"${c.key === 'index' ? html` aria-sort="ascending"` : undefined}><button type="button">${c.label}</button></th>`,
  );
  return html`<div class="table-tools">
<label>Filter <input id="class-filter" type="search" placeholder="breed or class name" autocomplete="off"></label>
<span id="class-count" aria-live="polite">${rows.length} of ${rows.length} classes</span>
<span class="note">Click a column header to sort; click again to reverse.</span>
</div>
<div class="table-wrap"><table id="class-table" class="data">
<thead><tr>${heads}</tr></thead>
<tbody>${rows}</tbody>
</table></div>`;
}

/** Sorting (ascending first, ties by class index) and filtering of #class-table. */
export const CLASS_TABLE_SCRIPT = `(function () {
  var table = document.getElementById('class-table');
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var filter = document.getElementById('class-filter');
  var shown = document.getElementById('class-count');
  var total = body.rows.length;

  function value(row, key, text) {
    var v = row.getAttribute('data-' + key);
    if (text) return v;
    var n = Number(v);
    return isNaN(n) ? -Infinity : n;
  }

  function sortBy(th) {
    var key = th.getAttribute('data-key');
    var text = th.getAttribute('data-type') === 'text';
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, key, text);
      var y = value(b, key, text);
      var c = text ? x.localeCompare(y) : x < y ? -1 : x > y ? 1 : 0;
      return c * dir || value(a, 'index', false) - value(b, 'index', false);
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    body.appendChild(frag);
    heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
  }

  table.tHead.addEventListener('click', function (e) {
    var th = e.target.closest('th[data-key]');
    if (th) sortBy(th);
  });

  function applyFilter() {
    var q = filter.value.trim().toLowerCase();
    var n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      r.hidden = q !== '' && r.getAttribute('data-search').indexOf(q) < 0;
      if (!r.hidden) n++;
    });
    shown.textContent = n + ' of ' + total + ' classes';
  }
  filter.addEventListener('input', applyFilter);
  // A reload may restore the box's text; the rows must agree with it.
  applyFilter();
})();`;
