// The report's stylesheet, inline: the file must open offline, with no fonts or assets to fetch.

export const STYLES = `
:root { --fg: #1d2430; --muted: #5d6878; --line: #d9dee6; --bg: #f6f7f9; --card: #fff;
  --good: #137333; --good-bg: #e6f4ea; --bad: #b3261e; --bad-bg: #fce8e6; --warn: #9a5b00; --warn-bg: #fef7e0;
  --bar: #dbe7fb;
  --train: #1a73e8; --val: #e8710a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1240px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 0 0 6px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
code { font: 12px ui-monospace, Menlo, Consolas, monospace; background: var(--bg); padding: 1px 4px; border-radius: 3px; }
.note { color: var(--muted); font-size: 13px; }
.class-id { display: block; color: var(--muted); font-size: 11px; }
.identity { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 6px 24px; margin: 12px 0 0; }
.identity dt { color: var(--muted); font-size: 12px; }
.identity dd { margin: 0; overflow-wrap: anywhere; }
.verdicts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.verdict { border-radius: 8px; padding: 14px 18px; border: 1px solid var(--line); }
.verdict.passed, .verdict.promoted { background: var(--good-bg); border-color: var(--good); }
.verdict.failed { background: var(--bad-bg); border-color: var(--bad); }
.verdict.not-promoted { background: var(--warn-bg); border-color: var(--warn); }
.verdict.passed .badge, .verdict.promoted .badge { color: var(--good); }
.verdict.failed .badge { color: var(--bad); }
.verdict.not-promoted .badge { color: var(--warn); }
.reasons { margin: 0; padding-left: 20px; }
.reason { margin: 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.figure { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; display: flex; flex-direction: column; }
.figure .label { color: var(--muted); font-size: 12px; }
.figure .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { margin: 0; }
.curve { max-width: 100%; height: auto; font-size: 11px; }
.curve .tick line { stroke: #eceff3; }
.curve text { fill: var(--muted); }
.curve .chart-title { fill: var(--fg); font-size: 13px; font-weight: 600; }
.curve .axis { stroke: #9aa3af; }
.curve .series path, .curve .series line { fill: none; stroke-width: 2; }
.curve .series-train path, .curve .series-train line { stroke: var(--train); }
.curve .series-val path, .curve .series-val line { stroke: var(--val); stroke-dasharray: 6 3; }
.curve .series-train circle { fill: var(--train); }
.curve .series-val circle { fill: var(--val); }
.curve .best-epoch line { stroke: #137333; stroke-dasharray: 3 3; }
.curve .best-epoch text { fill: #137333; font-weight: 600; }
table.data { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.data caption { text-align: left; font-weight: 600; padding: 4px 0; }
table.data th, table.data td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
table.data td.num, table.data th.num { text-align: right; }
table.data td.score { background: linear-gradient(to right, var(--bar) calc(var(--v) * 100%), transparent 0); }
.table-tools, .cm-tools { display: flex; flex-wrap: wrap; align-items: center; gap: 16px; margin-bottom: 8px; }
.table-wrap { max-height: 640px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
#class-table thead th { position: sticky; top: 0; background: var(--card); z-index: 1; }
#class-table th button { all: unset; cursor: pointer; font-weight: 600; }
#class-table th[aria-sort="ascending"] button::after { content: " \\25B2"; font-size: 10px; }
#class-table th[aria-sort="descending"] button::after { content: " \\25BC"; font-size: 10px; }
#class-filter { padding: 4px 8px; width: 240px; }
.legend { display: inline-flex; align-items: center; gap: 6px; }
.legend-bar { display: inline-block; width: 160px; height: 12px; border: 1px solid var(--line); }
.cm-layout { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
.cm-layout > div { min-width: 0; max-width: 100%; }
.cm-layout > .cm-side { flex: 1 1 340px; max-height: 85vh; overflow: auto; font-size: 13px; }
.cm-side th { white-space: nowrap; }
.cm-wrap { max-height: 85vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px; padding: 4px; }
#cm-canvas { display: block; cursor: crosshair; }
.tooltip { position: fixed; z-index: 10; pointer-events: none; background: #1d2430; color: #fff; padding: 4px 8px; border-radius: 4px; font-size: 12px; white-space: nowrap; }
.worst-list { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
.worst { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.worst p { margin: 4px 0; }
.taken-for { margin: 0; padding-left: 20px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 8px; }
.thumb { margin: 0; width: 150px; font-size: 12px; }
.thumb img { display: block; width: 150px; height: 150px; object-fit: cover; border-radius: 4px; background: var(--bg); }
.thumb figcaption span { display: block; overflow-wrap: anywhere; }
.thumb .predicted { color: var(--bad); }
.details { display: flex; flex-wrap: wrap; gap: 24px; }
.details table { width: auto; min-width: 280px; }
#render-errors { color: var(--bad); background: var(--bad-bg); padding: 8px; white-space: pre-wrap; }
@media (max-width: 800px) { .verdicts { grid-template-columns: 1fr; } }
`;
