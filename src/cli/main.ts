import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigSchema, type PipelineConfig } from '../config.ts';
import { SAMPLE_FIELDS, writeSampleTarball } from '../dataset/sample-data.ts';
import { errorMessage, InputError } from '../errors.ts';
import { DEFINITION_PATH } from '../local/definition.ts';
import { type LocalRunResult, newRunId, runLocalPipeline } from '../local/pipeline.ts';
import { setLogSink } from '../log.ts';
import { RUN_ID, record, text } from '../schema/fields.ts';
import type { ShardTask, ValidationTask } from '../types.ts';
import { cacheCommand } from './cache-command.ts';
import { classifyCommand } from './classify-command.ts';
import { decimal, decimals, type FlagSpec, parseFlags } from './flags.ts';
import { Progress } from './progress.ts';
import { compareCommand, evaluateCommand, reportCommand, runsCommand } from './report-commands.ts';
import { resumeOnStage, runOnStage } from './stage-run.ts';
import { printRunSummary, runSummary } from './summary.ts';
import { workspaceDir } from './workspace.ts';

const USAGE = `dogbreed — train, validate and serve a dog-breed classifier, on AWS or on this machine

Usage:
  dogbreed run [--source <url|dir|tar>] [--workspace DIR] [--seed N] [--split 0.7,0.15,0.15]
               [--shard-size N] [--profile imagefolder|stanford-dogs] [--min-per-class N]
               [--max-invalid-share F] [--sha256 HEX] [--resize N]
               [--backbone tiny|<onnx url|path>[,…]] [--feature-tensor NAME] [--epochs N] [--views N]
               [--hidden N] [--learning-rate F] [--patience N] [--flip] [--tune] [--no-cache] [--json]
               [--stage NAME [--region R] [--no-wait]]
      Runs the pipeline on the embedded default (local S3 + local Step Functions).
      Without --source it generates a synthetic sample dataset in the workspace.
      --stage NAME runs it on a deployed stage instead (serverless deploy --stage NAME) and
      follows the execution; --no-wait prints the execution ARN and returns.
      --backbone: the frozen ONNX ImageNet classifier to train a head on (default: a tiny
      backbone built in, enough for the synthetic sample). Several (comma-separated or the flag
      repeated): one head on their concatenated features, still one ONNX model.
      --flip: the model averages each image's logits with its mirror's (test-time flip).
      --tune: each head is trained over a small grid (step sizes × label smoothing) on the
      cached features and the best on val kept; every setting's val accuracy is in training.json.
      Preprocessed shards and backbone features are reused from the step cache (cache/ in
      the bucket), and the dataset's verification from its inventory.json, when everything
      that determines them is unchanged; --no-cache recomputes and verifies again.
  dogbreed resume RUN_ID [--workspace DIR] [--json] [--stage NAME [--region R] [--no-wait]]
      Continues a run that failed or was interrupted, under the same run id, from the state
      that did not finish; the states (and the Map shards) that succeeded are not run again.
      On a stage: Step Functions' RedriveExecution.
  dogbreed sample-data --out FILE.tar [--classes N] [--per-class M] [--seed S]
      Writes a Stanford-Dogs-layout tarball of synthetic, learnable JPEGs.
  dogbreed runs [--json]
      Lists runs: id, start, status, dataset, accuracy, macro-F1; ★ marks the champion.
  dogbreed report [RUN_ID|latest] [--json | --html FILE]
      A run's metrics summary (or its metrics.json, or its report.html written to FILE).
  dogbreed compare RUN_A RUN_B [--json]
      Side by side, with per-metric deltas and the classes that changed most.
  dogbreed evaluate --model <model.onnx|s3://…|RUN_ID|champion> <dir|tar> [--json]
      The same metrics for a model this pipeline produced, on any ImageFolder dir or tarball.
  dogbreed cache ls|clear [--json]
      The step cache: what it holds (objects, bytes), or remove it all.
  dogbreed classify <image…> [--json] [--timeout S]
      Uploads images to uploads/ and prints the champion's top-5 breeds from
      predictions/<name>.json (exit 1 on an error prediction or a timeout).
  (runs, report, compare, evaluate, cache and classify use the workspace's local bucket, --workspace DIR,
   or a deployed stage's bucket with --stage NAME [--region R])

Sources: https://…, http://…, s3://bucket/key, file://…, a path to a tarball, or a directory
in ImageFolder layout (<class>/<image>), e.g. ../shared/data/stanford-dogs-sample.
Workspace: --workspace, else $DOGBREED_WORKSPACE, else ./.dogbreed (kept between runs).
`;

/** One command's part of USAGE: its synopsis and description lines, up to the next command. */
export function commandUsage(command: string): string | undefined {
  const lines = USAGE.split('\n');
  const start = lines.findIndex(
    (l) => l === `  dogbreed ${command}` || l.startsWith(`  dogbreed ${command} `),
  );
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && lines[end]!.startsWith('   ')) end++;
  return `Usage:\n${lines.slice(start, end).join('\n')}\n`;
}

/** The Map states' ItemsPath (a plain `$.a.b` path), read from the definition the run executes. */
const ITEMS_PATHS = Object.fromEntries(
  Object.entries(
    (JSON.parse(readFileSync(DEFINITION_PATH, 'utf8')) as { States: Record<string, { ItemsPath?: string }> })
      .States,
  )
    .filter(([, s]) => s.ItemsPath)
    .map(([name, s]) => [name, s.ItemsPath!.replace(/^\$\.?/, '').split('.')]),
);

function mapItems(state: string, input: unknown): unknown[] {
  let value = input;
  for (const part of ITEMS_PATHS[state] ?? []) value = (value as Record<string, unknown> | null)?.[part];
  return Array.isArray(value) ? value : [];
}

/** A shard of the Preprocess plan or of the Validate fan-out, in words. */
function describeShard(item: unknown, index: number): string {
  const shard = item as Partial<ShardTask & ValidationTask> | undefined;
  if (shard?.split !== undefined) return `${shard.split} shard ${shard.index} (${shard.count} images)`;
  if (shard?.shardKey !== undefined) return `test shard ${shard.index} (${shard.count} images)`;
  return `item ${index}`;
}

export const SAMPLE_DEFAULTS = { classes: 10, perClass: 30, seed: 1 };

const SampleDataOptionsSchema = record({
  out: text(),
  classes: SAMPLE_FIELDS.classes.default(SAMPLE_DEFAULTS.classes),
  perClass: SAMPLE_FIELDS.perClass.default(SAMPLE_DEFAULTS.perClass),
  seed: SAMPLE_FIELDS.seed.default(SAMPLE_DEFAULTS.seed),
});

const SAMPLE_DATA_FLAGS: Record<string, FlagSpec> = {
  out: { path: ['out'] },
  classes: { path: ['classes'], read: decimal },
  'per-class': { path: ['perClass'], read: decimal },
  seed: { path: ['seed'], read: decimal },
};

/** `dogbreed run`'s configuration flags and the config field each sets. */
const RUN_FLAGS: Record<string, FlagSpec> = {
  source: { path: ['source'] },
  sha256: { path: ['expectedSha256'] },
  profile: { path: ['profile'] },
  'min-per-class': { path: ['minPerClass'], read: decimal },
  'max-invalid-share': { path: ['maxInvalidShare'], read: decimal },
  seed: { path: ['seed'], read: decimal },
  split: { path: ['split'], read: decimals },
  'shard-size': { path: ['shardSize'], read: decimal },
  resize: { path: ['resizeShorter'], read: decimal },
  backbone: { path: ['training', 'backbone'] },
  'feature-tensor': { path: ['training', 'featureTensor'] },
  epochs: { path: ['training', 'epochs'], read: decimal },
  views: { path: ['training', 'views'], read: decimal },
  hidden: { path: ['training', 'hidden'], read: decimal },
  'learning-rate': { path: ['training', 'learningRate'], read: decimal },
  patience: { path: ['training', 'patience'], read: decimal },
  flip: { path: ['training', 'flip'] },
  tune: { path: ['training', 'tune'] },
};

/** Without --source the run makes its own sample, so the flags may leave it out. */
const RunFlagsSchema = ConfigSchema.partial({ source: true });

const isUrl = (s: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function defaultSource(workspace: string, log: (line: string) => void): Promise<string> {
  const { classes, perClass, seed } = SAMPLE_DEFAULTS;
  const path = join(workspace, 'samples', `sample-c${classes}-p${perClass}-s${seed}.tar`);
  if (!(await exists(path))) {
    log(`generating the sample dataset (${classes} classes × ${perClass} images) at ${path}`);
    await writeSampleTarball(path, { classes, perClass, seed });
  }
  return path;
}

async function runCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      source: { type: 'string' },
      workspace: { type: 'string' },
      seed: { type: 'string' },
      split: { type: 'string' },
      'shard-size': { type: 'string' },
      profile: { type: 'string' },
      'min-per-class': { type: 'string' },
      'max-invalid-share': { type: 'string' },
      sha256: { type: 'string' },
      resize: { type: 'string' },
      backbone: { type: 'string', multiple: true },
      'feature-tensor': { type: 'string' },
      epochs: { type: 'string' },
      views: { type: 'string' },
      hidden: { type: 'string' },
      'learning-rate': { type: 'string' },
      patience: { type: 'string' },
      flip: { type: 'boolean' },
      tune: { type: 'boolean' },
      stage: { type: 'string' },
      region: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      'no-cache': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const json = values.json === true;
  // With --json, stdout carries only the result; progress goes to stderr.
  const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
  const workspace = workspaceDir(values.workspace);
  // Checked whole before anything is generated, uploaded or started.
  const options = parseFlags(
    RunFlagsSchema,
    values,
    RUN_FLAGS,
    values['no-cache'] ? { cache: false, training: { cache: false } } : {},
  );
  const config: PipelineConfig = {
    ...options,
    source: options.source ?? (await defaultSource(workspace, log)),
    training: {
      ...options.training,
      backbone: options.training.backbone.map((b) => (isUrl(b) || b === 'tiny' ? b : resolve(b))),
    },
  };
  // Sources given as relative paths mean this directory, not the server's.
  if (!isUrl(config.source)) config.source = resolve(config.source);

  if (values.stage) {
    const stage = values.stage;
    return following(log, { onAWS: true }, (progress, signal) =>
      runOnStage(config, {
        stage,
        region: values.region,
        wait: !values['no-wait'],
        progress,
        log,
        signal,
      }),
    );
  }
  const runId = newRunId();
  log(`run ${runId}: ${config.source} → workspace ${workspace}`);
  return following(log, { onAWS: false }, async (progress, signal) =>
    reportLocalRun(
      await runLocalPipeline({ workspace, config, runId, onEvent: progress.onEvent, signal }),
      json,
      log,
    ),
  );
}

/** Prints a local run's summary (JSON on stdout with --json); the exit code. */
function reportLocalRun(result: LocalRunResult, json: boolean, log: (line: string) => void): number {
  const summary = runSummary(result);
  if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else printRunSummary(summary, log);
  if (result.status === 'ABORTED') return 130;
  return result.status === 'SUCCEEDED' ? 0 : 1;
}

/** Runs `fn` with the progress display and Ctrl-C handling of a followed execution. */
async function following(
  log: (line: string) => void,
  where: { onAWS: boolean },
  fn: (progress: Progress, signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const progress = new Progress(log, mapItems, describeShard);
  const restoreLog = setLogSink(progress.logSink);
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130);
    log(
      where.onAWS
        ? 'interrupted: no longer following the execution (it keeps running on AWS)'
        : 'interrupted: stopping the execution and the local S3 server (Ctrl-C again to force)',
    );
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const code = await fn(progress, abort.signal);
    return abort.signal.aborted ? 130 : code;
  } finally {
    process.off('SIGINT', onSigint);
    restoreLog();
  }
}

async function resumeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      workspace: { type: 'string' },
      stage: { type: 'string' },
      region: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const [runId] = positionals;
  if (!runId || !RUN_ID.test(runId)) {
    throw new InputError('dogbreed resume needs a run id (`dogbreed runs` lists them)');
  }
  const json = values.json === true;
  const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
  if (values.stage) {
    const stage = values.stage;
    return following(log, { onAWS: true }, (progress, signal) =>
      resumeOnStage(runId, { stage, region: values.region, wait: !values['no-wait'], progress, log, signal }),
    );
  }
  const workspace = workspaceDir(values.workspace);
  log(`resume ${runId} → workspace ${workspace}`);
  return following(log, { onAWS: false }, async (progress, signal) =>
    reportLocalRun(
      await runLocalPipeline({
        workspace,
        runId,
        resume: true,
        config: { source: '' },
        onEvent: progress.onEvent,
        signal,
      }),
      json,
      log,
    ),
  );
}

async function sampleDataCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string' },
      classes: { type: 'string' },
      'per-class': { type: 'string' },
      seed: { type: 'string' },
    },
    strict: true,
  });
  const { out: path, ...opts } = parseFlags(SampleDataOptionsSchema, values, SAMPLE_DATA_FLAGS);
  const out = await writeSampleTarball(resolve(path), {
    ...opts,
    onProgress: (done, total) => {
      if (process.stderr.isTTY) process.stderr.write(`\r${done}/${total} images`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  process.stdout.write(
    `wrote ${out.path}: ${out.images} images in ${out.classes.length} classes, ${(out.bytes / 1048576).toFixed(1)} MiB\n`,
  );
  return 0;
}

const stdout = (line: string) => process.stdout.write(`${line}\n`);

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const usage = command === undefined ? undefined : commandUsage(command);
  if (usage && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(usage);
    return 0;
  }
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest);
      case 'resume':
        return await resumeCommand(rest);
      case 'sample-data':
        return await sampleDataCommand(rest);
      case 'runs':
        return await runsCommand(rest, stdout);
      case 'report':
        return await reportCommand(rest, stdout);
      case 'compare':
        return await compareCommand(rest, stdout);
      case 'evaluate':
        return await evaluateCommand(rest, stdout);
      case 'classify':
        return await classifyCommand(rest, stdout);
      case 'cache':
        return await cacheCommand(rest, stdout);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`dogbreed: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    const isUsage =
      err instanceof InputError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`dogbreed ${command}: ${errorMessage(err)}\n`);
    if (isUsage)
      process.stderr.write(`run \`dogbreed ${usage ? `${command} --help` : 'help'}\` for the options\n`);
    return isUsage ? 2 : 1;
  }
}
