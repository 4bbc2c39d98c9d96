import { parseArgs } from 'node:util';
import { InputError } from '../errors.ts';
import { keys } from '../storage/layout.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { TARGET_OPTIONS } from './report-commands.ts';
import { withStore } from './workspace.ts';

// `dogbreed cache ls | clear`: the step cache (preprocessed shards, backbone features) under
// cache/ in the bucket. Clearing it only costs time: the next run recomputes what it needs.

type Out = (line: string) => void;

interface CacheKind {
  kind: string;
  objects: number;
  bytes: number;
}

async function summarize(store: ObjectStore): Promise<CacheKind[]> {
  const kinds = new Map<string, CacheKind>();
  for await (const o of store.list(keys.cachePrefix)) {
    const kind = o.key.slice(keys.cachePrefix.length).split('/')[0] ?? '';
    const k = kinds.get(kind) ?? { kind, objects: 0, bytes: 0 };
    k.objects++;
    k.bytes += o.size;
    kinds.set(kind, k);
  }
  return [...kinds.values()].sort((a, b) => a.kind.localeCompare(b.kind));
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

export async function cacheCommand(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...TARGET_OPTIONS, json: { type: 'boolean' } },
  });
  const [action] = positionals;
  if (action !== 'ls' && action !== 'clear') {
    throw new InputError(`dogbreed cache takes ls or clear, got ${action ? `"${action}"` : 'nothing'}`);
  }
  return withStore(values, async (store) => {
    const kinds = await summarize(store);
    if (action === 'ls') {
      if (values.json) out(JSON.stringify(kinds, null, 2));
      else if (kinds.length === 0) out(`the step cache (s3://${store.bucket}/${keys.cachePrefix}) is empty`);
      else {
        for (const k of kinds)
          out(`${k.kind.padEnd(10)} ${String(k.objects).padStart(6)} objects  ${mib(k.bytes)}`);
        out(`in s3://${store.bucket}/${keys.cachePrefix}; \`dogbreed cache clear\` removes them`);
      }
      return 0;
    }
    let removed = 0;
    for await (const o of store.list(keys.cachePrefix)) {
      await store.delete(o.key);
      removed++;
    }
    const bytes = kinds.reduce((n, k) => n + k.bytes, 0);
    out(`removed ${removed} cached objects (${mib(bytes)}) from s3://${store.bucket}/${keys.cachePrefix}`);
    return 0;
  });
}
