import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STANFORD_DOGS_CLASSES } from '../src/dataset/stanford-dogs-classes.ts';
import type { ClassMetrics, ConfusedPair, MetricsReport } from '../src/metrics/types.ts';
import { type ReportThumbnail, renderReportHtml, type TrainingRecord } from '../src/report/html.ts';
import { mulberry32 } from '../src/util/prng.ts';
import { describeChromium, dumpDom, screenshot } from './helpers/chromium.ts';

// A realistic report: 120 Stanford Dogs classes, a seeded confusion matrix in which each class is
// mistaken mostly for its WordNet neighbours (as similar breeds are), figures computed from it.

const EVIL_BREED = '<script>alert(1)</script>';
const EVIL_CLASS = 7;
const EVIL_CHAMPION = 'run-"><img src=x onerror=alert(2)>';
const MODEL_SHA = 'ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12';

function confusionMatrix(n: number, seed: number): number[][] {
  const rand = mulberry32(seed);
  const m = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let r = 0; r < n; r++) {
    const support = 15 + Math.floor(rand() * 21);
    const skill = 0.35 + rand() * 0.6;
    const neighbours = [r - 1, r + 1, r + 2].filter((j) => j >= 0 && j < n);
    for (let i = 0; i < support; i++) {
      const u = rand();
      const c =
        u < skill
          ? r
          : u < skill + (1 - skill) * 0.75
            ? neighbours[Math.floor(rand() * neighbours.length)]!
            : Math.floor(rand() * n);
      m[r]![c]!++;
    }
  }
  return m;
}

function prf(precision: number, recall: number) {
  return { precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0 };
}

function metricsFixture(): MetricsReport {
  const n = STANFORD_DOGS_CLASSES.length;
  const confusion = confusionMatrix(n, 42);
  const colSum = confusion[0]!.map((_, c) => confusion.reduce((s, row) => s + row[c]!, 0));
  const perClass: ClassMetrics[] = STANFORD_DOGS_CLASSES.map((cls, i) => {
    const support = confusion[i]!.reduce((a, b) => a + b, 0);
    const tp = confusion[i]![i]!;
    const breed = i === EVIL_CLASS ? EVIL_BREED : cls.slice(cls.indexOf('-') + 1).replaceAll('_', ' ');
    const f = prf(colSum[i] ? tp / colSum[i]! : 0, tp / support);
    return { index: i, class: cls, breed, support, predicted: colSum[i]!, ...f };
  });
  const total = perClass.reduce((s, c) => s + c.support, 0);
  const accuracy = perClass.reduce((s, c) => s + confusion[c.index]![c.index]!, 0) / total;
  const mean = (k: 'precision' | 'recall' | 'f1', w: (c: ClassMetrics) => number) =>
    perClass.reduce((s, c) => s + c[k] * w(c), 0) / perClass.reduce((s, c) => s + w(c), 0);
  const macro = {
    precision: mean('precision', () => 1),
    recall: mean('recall', () => 1),
    f1: mean('f1', () => 1),
  };
  const weighted = {
    precision: mean('precision', (c) => c.support),
    recall: mean('recall', (c) => c.support),
    f1: mean('f1', (c) => c.support),
  };
  const pairs: ConfusedPair[] = [];
  confusion.forEach((row, r) => {
    row.forEach((v, c) => {
      if (r !== c && v > 0) {
        const support = perClass[r]!.support;
        pairs.push({
          actual: perClass[r]!.class,
          predicted: perClass[c]!.class,
          count: v,
          rate: v / support,
        });
      }
    });
  });
  pairs.sort((a, b) => b.count - a.count || b.rate - a.rate);
  const thresholds = { accuracy: 0.6, macroF1: 0.55, macroPrecision: 0.55, macroRecall: 0.55 };
  return {
    schemaVersion: 1,
    runId: 'run-20240501-101500-a1b2',
    createdAt: '2024-05-01T10:42:00.000Z',
    dataset: {
      datasetId: 'stanford-dogs-v1',
      sha256: 'fe98dc76ba54fe98dc76ba54fe98dc76ba54fe98dc76ba54fe98dc76ba54fe98',
    },
    model: {
      runId: 'run-20240501-101500-a1b2',
      key: 'runs/run-20240501-101500-a1b2/model/model.onnx',
      sha256: MODEL_SHA,
      backbone: 'mobilenetv2-12-int8',
      bestEpoch: 9,
      valAccuracy: 0.7312,
    },
    counts: { train: Math.round(total * 4.6), val: total, test: total, classes: n },
    accuracy,
    top5Accuracy: Math.min(1, accuracy + 0.17),
    logLoss: 1.0734,
    micro: prf(accuracy, accuracy),
    macro,
    weighted,
    perClass,
    confusion,
    mostConfused: pairs.slice(0, 20),
    gate: {
      passed: true,
      thresholds,
      reasons: [
        `accuracy ${accuracy.toFixed(3)} ≥ 0.60`,
        `macro F1 ${macro.f1.toFixed(3)} ≥ 0.55`,
        `macro precision ${macro.precision.toFixed(3)} ≥ 0.55`,
        `macro recall ${macro.recall.toFixed(3)} ≥ 0.55`,
      ],
    },
    promotion: {
      promoted: false,
      previousChampion: EVIL_CHAMPION,
      reason: 'macro F1 is below the champion’s 0.741',
    },
    timings: { FetchDataset: 12.5, Preprocess: 48.25, TrainModel: 312.75, Validate: 21 },
  };
}

function trainingFixture(): TrainingRecord {
  const epochs = Array.from({ length: 12 }, (_, i) => {
    const e = i + 1;
    return {
      epoch: e,
      trainLoss: 3.2 * Math.exp(-e / 4) + 0.35,
      trainAccuracy: 0.92 - 0.6 * Math.exp(-e / 3),
      valLoss: 0.9 + 0.012 * (e - 9) ** 2,
      valAccuracy: 0.7312 - 0.003 * (e - 9) ** 2,
      seconds: 20 + (e % 3),
    };
  });
  return {
    epochs,
    bestEpoch: 9,
    backend: 'tensorflow',
    hyperparameters: { learningRate: 0.001, batchSize: 64, hidden: 0, labelSmoothing: 0.1, seed: 7 },
  };
}

/** Lowest F1 first; ties: more support, then index (what the report promises). */
function expectedWorst(m: MetricsReport): number[] {
  return [...m.perClass]
    .sort((a, b) => a.f1 - b.f1 || b.support - a.support || a.index - b.index)
    .slice(0, 10)
    .map((c) => c.index);
}

async function thumbnailsFixture(m: MetricsReport): Promise<ReportThumbnail[]> {
  const worst = expectedWorst(m);
  // Five images of worst classes, one of a class outside them (shown under "other").
  const outside = m.perClass.find((c) => !worst.includes(c.index))!.index;
  const actuals = [worst[0]!, worst[0]!, worst[1]!, worst[2]!, worst[3]!, outside];
  return Promise.all(
    actuals.map(async (a, i) => {
      const jpeg = await sharp({
        create: { width: 24, height: 24, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 30 * i } },
      })
        .jpeg({ quality: 70 })
        .toBuffer();
      return {
        id: `test-${String(i).padStart(5, '0')}`,
        actual: m.perClass[a]!.class,
        predicted: m.perClass[(a + 1) % 120]!.class,
        probability: 0.41 + i * 0.09,
        jpegBase64: jpeg.toString('base64'),
      };
    }),
  );
}

const metrics = metricsFixture();
const training = trainingFixture();

describe('renderReportHtml', () => {
  let page: string;
  let thumbnails: ReportThumbnail[];
  beforeAll(async () => {
    thumbnails = await thumbnailsFixture(metrics);
    page = renderReportHtml({ metrics, training, thumbnails });
  });

  it('fetches nothing: no URLs, no external scripts, styles or frames', () => {
    expect(page).not.toMatch(/https?:\/\//i);
    expect(page).not.toMatch(/url\(/i);
    expect(page).not.toMatch(/<(link|iframe|object|embed|base)\b/i);
    const scriptTags = page.match(/<script\b[^>]*>/gi) ?? [];
    expect(scriptTags).toEqual([
      '<script>',
      '<script type="application/json" id="report-data">',
      '<script>',
      '<script>',
      '<script>',
    ]);
    const srcs = [...page.matchAll(/<[a-z][^<>]*?\s(?:src|href)\s*=\s*"([^"]*)"/gi)].map((x) => x[1]);
    expect(srcs).toHaveLength(thumbnails.length);
    for (const s of srcs) expect(s).toMatch(/^data:image\/jpeg;base64,[A-Za-z0-9+/]+=*$/);
    expect(page).toContain('content="default-src &#39;none&#39;; img-src data:;');
  });

  it('escapes class names and other strings from the data', () => {
    expect(page).not.toContain(EVIL_BREED);
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).not.toContain('<img src=x');
    expect(page).toContain('run-&quot;&gt;&lt;img src=x onerror=alert(2)&gt;');
    // In the JSON block "<" is \u003c, so the class name cannot close the <script> element.
    expect(page).toContain('\\u003cscript>alert(1)\\u003c/script>');
  });

  it('shows the headline figures, verdicts and identity', () => {
    const figure = (key: string) =>
      new RegExp(
        `data-metric="${key}"[^>]*><span class="label">[^<]*</span><span class="value">([^<]*)<`,
      ).exec(page)?.[1];
    expect(figure('accuracy')).toBe(`${(metrics.accuracy * 100).toFixed(1)}%`);
    expect(figure('top5')).toBe(`${(metrics.top5Accuracy * 100).toFixed(1)}%`);
    expect(figure('macro-f1')).toBe(metrics.macro.f1.toFixed(3));
    expect(figure('weighted-f1')).toBe(metrics.weighted.f1.toFixed(3));
    expect(figure('macro-precision')).toBe(metrics.macro.precision.toFixed(3));
    expect(figure('macro-recall')).toBe(metrics.macro.recall.toFixed(3));
    expect(figure('log-loss')).toBe('1.073');
    expect(figure('test')).toBe(metrics.counts.test.toLocaleString('en-US'));
    expect(figure('train')).toBe(metrics.counts.train.toLocaleString('en-US'));
    expect(figure('classes')).toBe('120');
    expect(page).toMatch(/id="gate" data-passed="true">\s*<h2>Quality gate: <span class="badge">PASSED</);
    for (const r of metrics.gate.reasons) expect(page).toContain(`<li>${r}</li>`);
    expect(page).toMatch(
      /id="promotion" data-promoted="false">\s*<h2>Promotion: <span class="badge">NOT PROMOTED</,
    );
    expect(page).toContain('macro F1 is below the champion’s 0.741');
    expect(page).toContain(`<code>${MODEL_SHA.slice(0, 12)}</code> from run run-20240501-101500-a1b2`);
    expect(page).toContain('mobilenetv2-12-int8');
    expect(page).toContain('stanford-dogs-v1 <code>fe98dc76ba54</code>');
    expect(page).toContain('<th scope="row">learningRate</th><td><code>0.001</code>');
  });

  it('an ensemble: the model card names every backbone with its sha256, and zero-shot beside the trained head', () => {
    const sha = (c: string) => c.repeat(64);
    const ensemble: MetricsReport = {
      ...metrics,
      model: {
        ...metrics.model,
        backbone: 'mnv2.onnx + resnet50.onnx',
        head: 'concatenated',
        zeroShotValAccuracy: 0.8597,
        backbones: [
          {
            source: 'mnv2.onnx',
            sha256: sha('a'),
            featureDim: 1280,
            valAccuracy: 0.8208,
            zeroShotValAccuracy: 0.8028,
            init: 'backbone-classifier-rows',
          },
          {
            source: 'resnet50.onnx',
            sha256: sha('b'),
            featureDim: 2048,
            valAccuracy: 0.7556,
            init: 'random',
            initReason: 'initFromBackbone is off',
          },
        ],
      },
    };
    const card = renderReportHtml({ metrics: ensemble, training });
    expect(card).toContain(
      `mnv2.onnx <code>sha256 ${sha('a')}</code> · 1,280 features · alone: val 82.1%, zero-shot 80.3%`,
    );
    expect(card).toContain(
      `resnet50.onnx <code>sha256 ${sha('b')}</code> · 2,048 features · alone: val 75.6% · head started from random weights: initFromBackbone is off`,
    );
    expect(card).toContain('concatenated, chosen on validation accuracy');
    // The apostrophe is escaped in the page.
    expect(card).toMatch(
      /86\.0% validation accuracy from the backbones\S+ own ImageNet classifiers \(trained head: 73\.1%\)/,
    );
  });

  it('lists the ten lowest-F1 classes with their misclassified images', () => {
    const cards = [...page.matchAll(/<article class="worst" data-index="(\d+)">([\s\S]*?)<\/article>/g)];
    expect(cards.map((c) => Number(c[1]))).toEqual(expectedWorst(metrics));
    const thumbsIn = (html: string) =>
      [...html.matchAll(/<figure class="thumb" data-id="([^"]+)"/g)].map((x) => x[1]);
    expect(thumbsIn(cards[0]![2]!)).toEqual(['test-00000', 'test-00001']);
    expect(thumbsIn(cards[1]![2]!)).toEqual(['test-00002']);
    expect(thumbsIn(cards[4]![2]!)).toEqual([]);
    const other = /<div class="thumbs" id="other-thumbs">([\s\S]*?)<\/div>/.exec(page)?.[1] ?? '';
    expect(thumbsIn(other)).toEqual(['test-00005']);
    expect(page).toContain('<span class="probability">p = 41.0%</span>');
  });

  it('stays small for 120 classes', () => {
    const images = thumbnails.reduce((s, t) => s + t.jpegBase64.length, 0);
    expect(Buffer.byteLength(page) - images).toBeLessThan(300_000);
  });

  it('leaves out the training section when there is no training record', () => {
    const without = renderReportHtml({ metrics });
    expect(without).not.toContain('id="training"');
    expect(without).not.toContain('<svg');
    expect(page).toContain('<section id="training">');
  });

  it('refuses a confusion matrix that is not square and a thumbnail that is not base64', () => {
    const bad = { ...metrics, confusion: metrics.confusion.map((r, i) => (i === 3 ? r.slice(1) : r)) };
    expect(() => renderReportHtml({ metrics: bad })).toThrow('row 3 has 119 of 120 cells');
    const thumb = { ...thumbnails[0]!, jpegBase64: 'abc"><script>' };
    expect(() => renderReportHtml({ metrics, thumbnails: [thumb] })).toThrow('thumbnail test-00000');
  });
});

/**
 * Runs after the page's own scripts (it is appended to a copy of the report), uses the page as a
 * person would (clicks headers, types a filter, hovers and zooms the heatmap) and writes what it
 * saw into <pre id="probe"> as JSON, which --dump-dom then carries out.
 */
function probeScript(cells: number[][], hoverCol: number): string {
  return `<script>(function () {
  var out = {};
  try {
    out.render = document.body.getAttribute('data-render');
    out.errors = document.getElementById('render-errors').textContent;
    out.resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
    out.urls = Array.from(document.querySelectorAll('[src],[href]')).map(function (e) {
      return (e.getAttribute('src') || e.getAttribute('href')).slice(0, 23);
    });
    out.scripts = document.scripts.length;
    function rows() { return Array.from(document.querySelectorAll('#class-table tbody tr')); }
    function visible() { return rows().filter(function (r) { return !r.hidden; }); }
    function sortBy(key) { document.querySelector('#class-table th[data-key="' + key + '"] button').click(); }
    function sortState(key) { return document.querySelector('#class-table th[data-key="' + key + '"]').getAttribute('aria-sort'); }
    function indexes() { return rows().map(function (r) { return Number(r.getAttribute('data-index')); }); }
    out.rows = rows().length;
    out.evilCell = rows()[${EVIL_CLASS}].cells[1].firstChild.textContent;
    sortBy('f1');
    out.f1Asc = { order: indexes(), state: sortState('f1'), index: sortState('index') };
    sortBy('f1');
    out.f1Desc = { order: indexes(), state: sortState('f1') };
    sortBy('breed');
    out.breedAsc = rows().map(function (r) { return r.getAttribute('data-breed'); });
    var filter = document.getElementById('class-filter');
    filter.value = 'Terrier';
    filter.dispatchEvent(new Event('input'));
    out.filtered = { breeds: visible().map(function (r) { return r.getAttribute('data-breed'); }),
      count: document.getElementById('class-count').textContent };
    filter.value = '';
    filter.dispatchEvent(new Event('input'));
    out.unfiltered = visible().length;

    var canvas = document.getElementById('cm-canvas');
    var ctx = canvas.getContext('2d');
    var dpr = window.devicePixelRatio || 1;
    function geometry() { return { width: canvas.width, cell: Number(canvas.dataset.cell), margin: Number(canvas.dataset.margin) }; }
    function centre(r, c) {
      var g = geometry();
      return [g.margin + (c + 0.5) * g.cell, g.margin + (r + 0.5) * g.cell];
    }
    function pixel(r, c) {
      var p = centre(r, c);
      return Array.from(ctx.getImageData(Math.floor(p[0] * dpr), Math.floor(p[1] * dpr), 1, 1).data);
    }
    function hover(r, c) {
      var p = centre(r, c);
      var box = canvas.getBoundingClientRect();
      canvas.dispatchEvent(new MouseEvent('mousemove', { clientX: box.left + p[0], clientY: box.top + p[1], bubbles: true }));
      var tip = document.getElementById('cm-tip');
      return { text: tip.textContent, hidden: tip.hidden };
    }
    out.geometry = geometry();
    out.dpr = dpr;
    var probes = ${JSON.stringify(cells)};
    function pixels() { return probes.map(function (p) { return pixel(p[0], p[1]); }); }
    out.pixels = pixels();
    out.hover = hover(${EVIL_CLASS}, ${hoverCol});
    canvas.dispatchEvent(new MouseEvent('mouseleave'));
    out.leftHidden = document.getElementById('cm-tip').hidden;
    document.getElementById('cm-top').click();
    out.topPixels = pixels();
    out.topLegend = document.getElementById('cm-legend-hi').textContent;
    var zoom = document.getElementById('cm-zoom');
    zoom.value = '16';
    zoom.dispatchEvent(new Event('change'));
    out.zoomed = geometry();
    out.zoomHover = hover(${EVIL_CLASS}, ${hoverCol});

    out.curves = Array.from(document.querySelectorAll('svg.curve')).map(function (svg) {
      var box = svg.getBoundingClientRect();
      return {
        id: svg.id,
        width: Math.round(box.width),
        series: Array.from(svg.querySelectorAll('g.series path')).map(function (p) { return (p.getAttribute('d').match(/[ML]/g) || []).length; }),
        best: svg.querySelector('.best-epoch').getAttribute('data-epoch'),
      };
    });
    out.renderAfter = document.body.getAttribute('data-render');
  } catch (e) {
    out.probeError = String(e && e.stack || e);
  }
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();</script>`;
}

interface Probe {
  render: string;
  errors: string;
  resources: string[];
  urls: string[];
  scripts: number;
  rows: number;
  evilCell: string;
  f1Asc: { order: number[]; state: string; index: string | null };
  f1Desc: { order: number[]; state: string };
  breedAsc: string[];
  filtered: { breeds: string[]; count: string };
  unfiltered: number;
  geometry: { width: number; cell: number; margin: number };
  dpr: number;
  pixels: number[][];
  hover: { text: string; hidden: boolean };
  leftHidden: boolean;
  topPixels: number[][];
  topLegend: string;
  zoomed: { width: number; cell: number; margin: number };
  zoomHover: { text: string; hidden: boolean };
  curves: { id: string; width: number; series: number[]; best: string }[];
  renderAfter: string;
  probeError?: string;
}

function decodeText(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&nbsp;/g, '\u00a0')
    .replace(/&amp;/g, '&');
}

/** The off-diagonal cell with the highest share of its row (ties: count, then row, then column). */
function topConfusion(m: number[][]): [number, number] {
  let best: [number, number] = [0, 1];
  let bestKey = [-1, -1];
  m.forEach((row, r) => {
    const sum = row.reduce((a, b) => a + b, 0);
    row.forEach((v, c) => {
      const key = [v / sum, v];
      if (r !== c && v > 0 && (key[0]! > bestKey[0]! || (key[0] === bestKey[0] && key[1]! > bestKey[1]!))) {
        best = [r, c];
        bestKey = key;
      }
    });
  });
  return best;
}

describeChromium('report.html in headless Chromium', () => {
  const m = metrics.confusion;
  const top = topConfusion(m);
  const zero = (() => {
    for (let r = 0; r < m.length; r++) for (let c = 0; c < m.length; c++) if (m[r]![c] === 0) return [r, c];
    throw new Error('no empty cell');
  })();
  const evilRow = m[EVIL_CLASS]!;
  const hoverCol = evilRow.reduce((best, v, c) => (c !== EVIL_CLASS && v > evilRow[best]! ? c : best), 0);
  const cells = [[0, 0], zero, top];

  let dir: string;
  let probe: Probe;
  let png: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'report-html-'));
    const page = renderReportHtml({ metrics, training, thumbnails: await thumbnailsFixture(metrics) });
    const reportFile = join(dir, 'report.html');
    const probeFile = join(dir, 'probe.html');
    await writeFile(reportFile, page);
    await writeFile(probeFile, page.replace('</body>', `${probeScript(cells, hoverCol)}\n</body>`));
    png = join(dir, 'screenshot.png');
    const [dom] = await Promise.all([dumpDom(probeFile), screenshot(reportFile, png)]);
    const json = /<pre id="probe">([\s\S]*?)<\/pre>/.exec(dom)?.[1];
    if (!json) throw new Error(`the probe wrote nothing; the page's DOM began: ${dom.slice(0, 500)}`);
    probe = JSON.parse(decodeText(json)) as Probe;
    // To look at the page: REPORT_HTML_SCREENSHOT=/some/file.png npx vitest run test/report-html.test.ts
    if (process.env.REPORT_HTML_SCREENSHOT) await copyFile(png, process.env.REPORT_HTML_SCREENSHOT);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs its scripts without errors and loads nothing', () => {
    expect(probe.probeError).toBeUndefined();
    expect(probe.errors).toBe('');
    expect(probe.render).toBe('ok');
    expect(probe.renderAfter).toBe('ok');
    expect(probe.resources).toEqual([]);
    expect(probe.urls).toEqual(Array(6).fill('data:image/jpeg;base64,'));
    // Four of the report's own plus the probe: the evil class name did not become a script.
    expect(probe.scripts).toBe(6);
    expect(probe.evilCell).toBe(EVIL_BREED);
  });

  it('sorts the per-class table by a clicked header, and reverses on a second click', () => {
    const byF1 = [...metrics.perClass].sort((a, b) => a.f1 - b.f1 || a.index - b.index).map((c) => c.index);
    const byF1Desc = [...metrics.perClass]
      .sort((a, b) => b.f1 - a.f1 || a.index - b.index)
      .map((c) => c.index);
    expect(probe.rows).toBe(120);
    expect(probe.f1Asc).toEqual({ order: byF1, state: 'ascending', index: null });
    expect(probe.f1Desc).toEqual({ order: byF1Desc, state: 'descending' });
    expect(probe.breedAsc).toEqual(metrics.perClass.map((c) => c.breed).sort((a, b) => a.localeCompare(b)));
  });

  it('filters the table by name', () => {
    // Breed or class folder name; class 7's folder is still n02087046-toy_terrier.
    const matching = new Set(
      metrics.perClass
        .filter((c) => `${c.breed} ${c.class}`.toLowerCase().includes('terrier'))
        .map((c) => c.breed),
    );
    const terriers = probe.breedAsc.filter((b) => matching.has(b));
    expect(terriers).toContain(EVIL_BREED);
    expect(terriers.length).toBeGreaterThan(10);
    expect(probe.filtered).toEqual({ breeds: terriers, count: `${terriers.length} of 120 classes` });
    expect(probe.unfiltered).toBe(120);
  });

  it('draws the confusion heatmap, names the hovered cell and zooms', () => {
    const size = (cell: number) => Math.round((30 + 120 * cell) * probe.dpr);
    expect(probe.geometry).toEqual({ width: size(6), cell: 6, margin: 30 });
    const white = [255, 255, 255, 255];
    const [diagonal, empty, strongest] = probe.pixels;
    expect(diagonal).not.toEqual(white);
    expect(empty).toEqual(white);
    expect(strongest).not.toEqual(white);
    // "Top confusions only" hides the diagonal and stretches the scale: the strongest is darkest.
    expect(probe.topPixels).toEqual([white, white, [84, 0, 72, 255]]);
    const topRate = m[top[0]]![top[1]]! / m[top[0]]!.reduce((a, b) => a + b, 0);
    expect(probe.topLegend).toBe(`${(topRate * 100).toFixed(1)}%`);
    const sum = evilRow.reduce((a, b) => a + b, 0);
    const n = evilRow[hoverCol]!;
    const text = `${EVIL_BREED} → ${metrics.perClass[hoverCol]!.breed}: ${n} (${((n / sum) * 100).toFixed(1)}% of ${sum})`;
    expect(probe.hover).toEqual({ text, hidden: false });
    expect(probe.leftHidden).toBe(true);
    expect(probe.zoomed).toEqual({ width: size(16), cell: 16, margin: 30 });
    expect(probe.zoomHover).toEqual({ text, hidden: false });
  });

  it('draws both training curves with 12 epochs and the best epoch marked', () => {
    expect(probe.curves).toEqual([
      { id: 'curve-loss', width: 540, series: [12, 12], best: '9' },
      { id: 'curve-accuracy', width: 540, series: [12, 12], best: '9' },
    ]);
  });

  it('takes a 1400×2000 screenshot that is not blank', async () => {
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([1400, 2000]);
    const stats = await sharp(png).stats();
    expect(stats.channels[0]!.stdev).toBeGreaterThan(10);
  });
});
