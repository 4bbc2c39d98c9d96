import { errorMessage, InputError } from '../src/errors.ts';
import { runId as runIdSchema } from '../src/schema/fields.ts';
import { parseInput } from '../src/schema/parse.ts';
import { storeFromEnv } from '../src/storage/s3-store.ts';
import { trainModel } from '../src/training/train-model.ts';
import { parseTrainingConfig } from '../src/training/training-config.ts';
import { restoreUtilForTfjsNode } from './node-compat.ts';
import { selfCheck } from './self-check.ts';

// The training container's entry point (AWS Batch; a child process on the embedded default).
// Contract: DOGBREED_BUCKET (+ DOGBREED_S3_ENDPOINT locally), DOGBREED_RUN_ID, and
// DOGBREED_TRAINING, a small JSON object of training options (see training-config.ts).
// Progress goes to stdout one line at a time; errors to stderr; exit 0 only on success.
// `--self-check [--require-gpu-stack]` instead prints what the native modules can do (one JSON
// object on stdout) and exits 1 when one cannot load: the image build runs it.

function parseEnv(env: NodeJS.ProcessEnv) {
  const runId = parseInput(runIdSchema(), env.DOGBREED_RUN_ID, { name: 'DOGBREED_RUN_ID' });
  let training: unknown = {};
  if (env.DOGBREED_TRAINING) {
    try {
      training = JSON.parse(env.DOGBREED_TRAINING);
    } catch {
      throw new InputError(`DOGBREED_TRAINING is not valid JSON: ${env.DOGBREED_TRAINING.slice(0, 80)}`);
    }
  }
  return { runId, training: parseTrainingConfig(training, 'DOGBREED_TRAINING') };
}

/** Locally the job is the CLI's child: when the CLI dies, its end of our stdin closes. */
function exitWithParent(): void {
  if (process.env.DOGBREED_EXIT_WITH_PARENT !== '1') return;
  process.stdin.on('end', () => process.exit(137));
  process.stdin.on('error', () => process.exit(137));
  process.stdin.resume();
  // Waiting for that must not keep a finished job alive.
  (process.stdin as NodeJS.ReadStream & { unref?: () => void }).unref?.();
}

async function main(argv: readonly string[]): Promise<number> {
  restoreUtilForTfjsNode();
  if (argv.includes('--self-check')) {
    const report = await selfCheck({ requireGpuStack: argv.includes('--require-gpu-stack') });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (!report.ok) process.stderr.write(`self-check failed:\n  ${report.failures.join('\n  ')}\n`);
    return report.ok ? 0 : 1;
  }
  exitWithParent();
  try {
    const { runId, training } = parseEnv(process.env);
    const store = storeFromEnv();
    const result = await trainModel(store, {
      runId,
      training,
      progress: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`model written: s3://${store.bucket}/${result.modelKey}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n`);
    return err instanceof InputError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
