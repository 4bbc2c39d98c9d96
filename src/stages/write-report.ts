import sharp from 'sharp';
import { parseClassName } from '../dataset/profiles.ts';
import { DataError } from '../errors.ts';
import type { WriteReportEvent } from '../events.ts';
import { logger } from '../log.ts';
import { computeMetrics } from '../metrics/compute.ts';
import { comparePromotion, evaluateGate } from '../metrics/gate.ts';
import type { BackboneCard, CacheUse, MetricsReport, Prediction, PredictionShard } from '../metrics/types.ts';
import { renderReportHtml, type TrainingRecord, worstClasses } from '../report/html.ts';
import { readChampion, writeChampion } from '../storage/champion.ts';
import { readResumes } from '../storage/execution-journal.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { readShard } from '../training/shard-reader.ts';

// WriteReport: every predictions shard → metrics.json (with the quality gate) and report.html,
// and the model promoted to champion when it passes the gate and beats the current one.
// Order of writes: report.html, then models/current.json, then metrics.json last — so a
// metrics.json present means a complete report, and a retry gives the same result.

export interface WriteReportResult {
  metricsKey: string;
  reportKey: string;
  accuracy: number;
  macroF1: number;
  gatePassed: boolean;
  promoted: boolean;
}

/** The part of training.json the report needs, beyond what report.html draws. */
interface TrainingFile extends TrainingRecord {
  backbone: { source: string };
  data?: { featureShards?: { shardKey: string; cached: boolean; seconds: number }[] };
  backbones?: BackboneCard[];
  head?: string;
  zeroShotValAccuracy?: number;
  valAccuracy: number;
  modelSha256: string;
}

const THUMBS_PER_CLASS = 3;

async function readPredictions(
  store: ObjectStore,
  event: WriteReportEvent,
): Promise<{ shards: PredictionShard[]; all: Prediction[] }> {
  const shards: PredictionShard[] = [];
  for (const p of event.predictions) {
    let shard: PredictionShard;
    try {
      shard = await store.getJson<PredictionShard>(p.predictionsKey);
    } catch (err) {
      throw new DataError(
        `predictions shard ${p.predictionsKey} cannot be read (${(err as Error).message}): run Validate again`,
      );
    }
    if (!Array.isArray(shard.predictions) || shard.predictions.length !== p.images) {
      throw new DataError(
        `predictions shard ${p.predictionsKey} is incomplete: ${Array.isArray(shard.predictions) ? shard.predictions.length : 'no'} predictions, Validate reported ${p.images}`,
      );
    }
    shards.push(shard);
  }
  return { shards, all: shards.flatMap((s) => s.predictions) };
}

async function thumbnails(
  store: ObjectStore,
  shards: PredictionShard[],
  metrics: ReturnType<typeof computeMetrics>,
  labels: string[],
) {
  const worst = worstClasses(metrics.perClass);
  const wanted = new Map<string, { actual: string; predicted: string; probability: number }>();
  for (const c of worst) {
    let taken = 0;
    for (const s of shards) {
      for (const p of s.predictions) {
        const top = p.top5[0];
        if (taken < THUMBS_PER_CLASS && p.label === c.index && top && top.label !== p.label) {
          wanted.set(p.id, {
            actual: labels[p.label]!,
            predicted: labels[top.label]!,
            probability: top.probability,
          });
          taken++;
        }
      }
    }
  }
  const out: { id: string; actual: string; predicted: string; probability: number; jpegBase64: string }[] =
    [];
  for (const s of shards) {
    if (![...wanted.keys()].some((id) => s.predictions.some((p) => p.id === id))) continue;
    for await (const img of readShard(store, s.shardKey)) {
      const w = wanted.get(img.id);
      if (!w) continue;
      const jpeg = await sharp(img.jpeg).resize(112, 112, { fit: 'cover' }).jpeg({ quality: 70 }).toBuffer();
      out.push({ id: img.id, ...w, jpegBase64: jpeg.toString('base64') });
    }
  }
  return out;
}

function cacheUse(shards: { key: string; cached: boolean; seconds?: number }[]): CacheUse {
  const reused = shards.filter((s) => s.cached).length;
  return {
    computed: shards.length - reused,
    reused,
    shards: shards.map((s) => ({ key: s.key, cached: s.cached, seconds: s.seconds })),
  };
}

export async function writeReport(store: ObjectStore, event: WriteReportEvent): Promise<WriteReportResult> {
  const { runId, config } = event;
  const { shards, all } = await readPredictions(store, event);
  const { classes } = await store.getJson<{ classes: string[] }>(keys.classes(runId));
  const training = await store.getJson<TrainingFile>(keys.modelTraining(runId));
  const classInfo = classes.map((c, index) => ({ index, class: c, breed: parseClassName(c).breed }));
  const computed = computeMetrics(all, classInfo);
  const gate = evaluateGate(computed, config.gate);

  const champion = await readChampion(store);
  // A retried WriteReport finds itself already champion: the same decision, not a demotion.
  const promotion =
    champion?.runId === runId
      ? {
          promoted: true,
          reason: `promoted: this run is already the champion (macro F1 ${champion.macroF1.toFixed(3)})`,
        }
      : comparePromotion({ runId, macroF1: computed.macro.f1, gate }, champion);

  const resumed = await readResumes(store, runId);
  const metrics: MetricsReport = {
    schemaVersion: 1,
    runId,
    createdAt: new Date().toISOString(),
    dataset: { datasetId: event.dataset.datasetId, sha256: event.dataset.sha256 },
    model: {
      runId,
      key: keys.model(runId),
      sha256: training.modelSha256,
      backbone: training.backbone.source,
      bestEpoch: training.bestEpoch,
      valAccuracy: training.valAccuracy,
      ...(training.head ? { head: training.head } : {}),
      ...(training.zeroShotValAccuracy !== undefined
        ? { zeroShotValAccuracy: training.zeroShotValAccuracy }
        : {}),
      ...(training.backbones
        ? {
            backbones: training.backbones.map((b) => ({
              source: b.source,
              sha256: b.sha256,
              featureDim: b.featureDim,
              valAccuracy: b.valAccuracy,
              zeroShotValAccuracy: b.zeroShotValAccuracy,
              init: b.init,
              initReason: b.initReason,
            })),
          }
        : {}),
    },
    counts: { ...event.counts, classes: classes.length },
    ...computed,
    gate,
    promotion,
    timings: event.timings,
    cache: {
      ...(event.verify ? { VerifyDataset: cacheUse([event.verify]) } : {}),
      Preprocess: cacheUse(event.shards),
      TrainModel: cacheUse((training.data?.featureShards ?? []).map((s) => ({ ...s, key: s.shardKey }))),
    },
    ...(resumed.length > 0 ? { resumed } : {}),
  };
  const html = renderReportHtml({
    metrics,
    training,
    thumbnails: await thumbnails(store, shards, computed, classes),
  });
  await store.put(keys.reportHtml(runId), html, { contentType: 'text/html; charset=utf-8' });
  if (promotion.promoted && champion?.runId !== runId) {
    await writeChampion(store, {
      runId,
      modelKey: keys.model(runId),
      modelSha256: training.modelSha256,
      macroF1: computed.macro.f1,
      accuracy: computed.accuracy,
      metricsKey: keys.metrics(runId),
      promotedAt: new Date().toISOString(),
    });
  }
  await store.putJson(keys.metrics(runId), metrics);
  logger.info(
    `accuracy ${computed.accuracy.toFixed(4)}, macro F1 ${computed.macro.f1.toFixed(4)}; gate ${gate.passed ? 'passed' : 'failed'}; ${promotion.reason}`,
  );
  return {
    metricsKey: keys.metrics(runId),
    reportKey: keys.reportHtml(runId),
    accuracy: computed.accuracy,
    macroF1: computed.macro.f1,
    gatePassed: gate.passed,
    promoted: promotion.promoted,
  };
}
