import { createHash, randomUUID } from 'node:crypto';
import { Transform } from 'node:stream';
import { LOCAL_SOURCES, type SourcePolicy } from '../dataset/source-policy.ts';
import {
  checkSource,
  describeSource,
  openSource,
  parseSource,
  sourceFingerprint,
} from '../dataset/sources.ts';
import { DataError } from '../errors.ts';
import { logger } from '../log.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { FetchResult } from '../types.ts';

// FetchDataset: stream the source into the bucket (multipart, bounded memory), hashing on
// the way. Content-addressed: the dataset id is the start of the SHA-256, so the same bytes
// always land at the same key and a retried fetch gives the same result.

export interface FetchInput {
  source: string;
  expectedSha256?: string;
  /** Exact size of the tarball (a profile's pin): anything else is truncated or substituted. */
  expectedBytes?: number;
  /** Which sources may be read; LOCAL_SOURCES unless the caller runs deployed. */
  policy?: SourcePolicy;
}

interface SourceRecord {
  source: string;
  fingerprint: string;
  sha256: string;
  bytes: number;
  fetchedAt: string;
}

export const datasetIdFor = (sha256: string) => sha256.slice(0, 16);

async function existing(store: ObjectStore, sha256: string): Promise<FetchResult | undefined> {
  const datasetId = datasetIdFor(sha256);
  const tarKey = keys.datasetTar(datasetId);
  const info = await store.head(tarKey);
  if (info?.metadata.sha256 !== sha256) return undefined;
  return { datasetId, tarKey, sha256, bytes: info.size, skipped: true };
}

export async function fetchDataset(store: ObjectStore, input: FetchInput): Promise<FetchResult> {
  const ref = parseSource(input.source);
  const where = describeSource(ref);
  const expected = input.expectedSha256?.toLowerCase();
  const policy = input.policy ?? LOCAL_SOURCES;
  await checkSource(ref, policy);
  const pinned = input.expectedBytes;
  const sizeError = (bytes: number) =>
    pinned !== undefined && bytes !== pinned
      ? new DataError(
          `${where} is ${bytes > pinned ? `over ${pinned}` : bytes} bytes, but the dataset profile expects exactly ${pinned}: the download is truncated or not the expected tarball; nothing was kept`,
        )
      : undefined;
  const checkSize = (bytes: number) => {
    const err = sizeError(bytes);
    if (err) throw err;
  };

  if (expected) {
    const hit = await existing(store, expected);
    if (hit) {
      checkSize(hit.bytes);
      logger.info(`dataset already present with sha256 ${expected}: skipping the download`, {
        key: hit.tarKey,
      });
      return hit;
    }
  }
  const fingerprint = await sourceFingerprint(ref, store, policy);
  const recordKey = keys.sourceRecord(createHash('sha256').update(where).digest('hex').slice(0, 24));
  if (fingerprint && !expected) {
    const record = await store.getJsonIfExists<SourceRecord>(recordKey);
    const hit = record?.fingerprint === fingerprint ? await existing(store, record.sha256) : undefined;
    if (hit) {
      checkSize(hit.bytes);
      logger.info(`${where} is unchanged since ${record?.fetchedAt}: skipping the download`, {
        key: hit.tarKey,
      });
      return hit;
    }
  }

  const incoming = keys.incoming(randomUUID());
  // Not retried here: a TransientError (5xx, 429, a dropped connection) fails the state, and
  // the state machine's Retry runs it again; anything else fails the run at once.
  const hash = createHash('sha256');
  let bytes = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      // Longer than the pin: stop now rather than store gigabytes that will be refused.
      done(bytes > (pinned ?? Number.POSITIVE_INFINITY) ? sizeError(bytes) : null, chunk);
    },
  });
  const body = (await openSource(ref, store, policy)).on('error', (e) => hasher.destroy(e)).pipe(hasher);
  let lastLog = 0;
  await store.upload(incoming, body, {
    contentType: 'application/x-tar',
    onProgress: (loaded) => {
      if (loaded - lastLog < 64 * 1024 * 1024) return;
      lastLog = loaded;
      logger.info(`fetched ${(loaded / 1048576).toFixed(0)} MiB from ${where}`, { bytes: loaded });
    },
  });
  const sha256 = hash.digest('hex');

  try {
    checkSize(bytes);
    if (expected && sha256 !== expected) {
      throw new DataError(
        `${where} has sha256 ${sha256}, expected ${expected}: the download is corrupt or the expected checksum is wrong; nothing was kept`,
      );
    }
    if (bytes === 0) throw new DataError(`${where} is empty (0 bytes): nothing was kept`);
    const hit = await existing(store, sha256);
    const result: FetchResult = hit ?? {
      datasetId: datasetIdFor(sha256),
      tarKey: keys.datasetTar(datasetIdFor(sha256)),
      sha256,
      bytes,
      skipped: false,
    };
    if (hit)
      logger.info(`dataset with sha256 ${sha256} already present: keeping the stored copy`, {
        key: hit.tarKey,
      });
    else {
      logger.info(
        `stored ${(bytes / 1048576).toFixed(1)} MiB from ${where} (sha256 ${sha256.slice(0, 12)}…)`,
        {
          key: result.tarKey,
        },
      );
      await store.copy(incoming, result.tarKey, {
        contentType: 'application/x-tar',
        metadata: { sha256, source: encodeURIComponent(where).slice(0, 1024) },
      });
    }
    if (fingerprint) {
      const record: SourceRecord = {
        source: where,
        fingerprint,
        sha256,
        bytes,
        fetchedAt: new Date().toISOString(),
      };
      await store.putJson(recordKey, record);
    }
    return result;
  } finally {
    await store.delete(incoming);
  }
}
