import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServingModel, measureServing } from '../scripts/serving-memory.ts';
import { EXECUTION_STATUS_CHANGE, FAILED_STATUSES } from '../src/execution-status-event.ts';
import { DEFINITION_PATH, placeholders, substitute } from '../src/local/definition.ts';
import { MAX_LOADED } from '../src/model/serving-model.ts';
import { buildTinyBackbone } from '../src/model/tiny-backbone.ts';
import { isUploadImageKey } from '../src/stages/classify-upload.ts';
import { VALIDATE_BATCH, VALIDATE_LOAD } from '../src/stages/validate-shard.ts';
import { formatProblems, loadSpec, SpecChecker } from './helpers/cfn-spec.ts';
import { LAMBDA_NODE_MAJOR, LAMBDA_RUNTIME, lambdaNode } from './helpers/lambda-node.ts';
import {
  type Json,
  type LayerBuild,
  type Obj,
  packageService,
  type Resource,
  type Template,
} from './helpers/serverless-package.ts';
import { describeShared, SHARED_BACKBONE, SHARED_RESNET50, SHARED_SAMPLE_DIR } from './helpers/shared.ts';

// `serverless package` (osls + serverless-step-functions + serverless-esbuild), run offline with
// no AWS credentials at all, and the CloudFormation template and artefacts it produces checked:
// resources, least-privilege IAM, the upload notification, the state machine definition against
// the ASL file, the GPU Batch job, and the Lambda size limits with the layers.

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MB = 1024 * 1024;
/** Lambda: zipped deployment package (direct upload), and function + layers unzipped. */
const ZIPPED_LIMIT = 50 * MB;
const UNZIPPED_LIMIT = 250 * MB;

// ---------------------------------------------------------------- template types and helpers

interface Statement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: Json;
  Condition?: Obj;
  Principal?: Json;
}

const arr = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const getAtt = (id: string, attr: string) => ({ 'Fn::GetAtt': [id, attr] });
const ref = (id: string) => ({ Ref: id });

/** Fn::Sub strings of the stack's bucket ARNs, as a key pattern ("" is the bucket itself). */
function s3Pattern(resource: Json, bucketArn: string): string | undefined {
  const text = typeof resource === 'string' ? resource : (resource as Obj)?.['Fn::Sub'];
  if (typeof text !== 'string') return undefined;
  if (text === bucketArn) return '';
  return text.startsWith(`${bucketArn}/`) ? text.slice(bucketArn.length + 1) : undefined;
}

/** The rule-specific intrinsic functions CloudFormation evaluates in a template's Rules. */
function evalRule(expr: Json, params: Record<string, string>): Json {
  if (typeof expr !== 'object' || expr === null || Array.isArray(expr)) return expr;
  const [fn, args] = Object.entries(expr)[0]!;
  if (fn === 'Ref') {
    const value = params[args as string];
    if (value === undefined) throw new Error(`rule refers to parameter ${String(args)}, not given`);
    return value;
  }
  const a = (args as Json[]).map((x) => evalRule(x, params));
  if (fn === 'Fn::Equals') return a[0] === a[1];
  if (fn === 'Fn::Not') return !a[0];
  if (fn === 'Fn::And') return a.every(Boolean);
  if (fn === 'Fn::Or') return a.some(Boolean);
  throw new Error(`rule function ${fn} is not evaluated here`);
}

function policyStatements(role: Resource): Statement[] {
  const policies = arr(role.Properties.Policies as Obj[] | undefined);
  return policies.flatMap((p) => arr((p.PolicyDocument as Obj).Statement as unknown as Statement[]));
}

// ---------------------------------------------------------------- a small zip reader

interface ZipEntry {
  name: string;
  compressed: number;
  size: number;
  read: () => Buffer;
}

/** The entries of a zip (no zip64: every artefact here is far below 4 GiB). */
function readZip(buf: Buffer): ZipEntry[] {
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error('not a zip file');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory');
    const method = buf.readUInt16LE(p + 10);
    const compressed = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    entries.push({
      name,
      compressed,
      size,
      read: () => {
        const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
        const data = buf.subarray(start, start + compressed);
        return method === 0 ? Buffer.from(data) : inflateRawSync(data);
      },
    });
  }
  return entries;
}

async function extractZip(file: string, into: string): Promise<void> {
  for (const e of readZip(readFileSync(file))) {
    if (e.name.endsWith('/')) continue;
    const to = join(into, e.name);
    await mkdir(dirname(to), { recursive: true });
    await writeFile(to, e.read());
  }
}

const unzippedSize = (file: string) => readZip(readFileSync(file)).reduce((sum, e) => sum + e.size, 0);

// ---------------------------------------------------------------- the ASL file

type State = Obj & { Type: string };
const aslText = readFileSync(DEFINITION_PATH, 'utf8');
const asl = JSON.parse(aslText) as { States: Record<string, State> };

function allStates(states: Record<string, State>): [string, State][] {
  return Object.entries(states).flatMap(([name, s]) => {
    const inner = s.ItemProcessor as { States: Record<string, State> } | undefined;
    return [[name, s] as [string, State], ...(inner ? allStates(inner.States) : [])];
  });
}
const taskStates = allStates(asl.States).filter(([, s]) => s.Type === 'Task');
const lambdaTasks = taskStates.filter(([, s]) => String(s.Resource).endsWith('FunctionArn}'));

// ---------------------------------------------------------------- what is expected

const FUNCTIONS = {
  FetchDataset: { handler: 'functions/fetch-dataset.handler', memory: 1024, timeout: 900, layers: [] },
  VerifyDataset: { handler: 'functions/verify-dataset.handler', memory: 1769, timeout: 900, layers: [] },
  BuildManifests: { handler: 'functions/build-manifests.handler', memory: 512, timeout: 300, layers: [] },
  PreprocessShard: {
    handler: 'functions/preprocess-shard.handler',
    memory: 3538,
    timeout: 900,
    layers: ['SharpLambdaLayer'],
  },
  ValidateShard: {
    handler: 'functions/validate-shard.handler',
    memory: 3538,
    timeout: 900,
    layers: ['SharpLambdaLayer', 'OnnxruntimeLambdaLayer'],
  },
  WriteReport: {
    handler: 'functions/write-report.handler',
    memory: 1024,
    timeout: 900,
    layers: ['SharpLambdaLayer'],
  },
  ReportFailure: { handler: 'functions/report-failure.handler', memory: 256, timeout: 60, layers: [] },
  ClassifyUpload: {
    handler: 'functions/classify-upload.handler',
    memory: 1769,
    timeout: 60,
    layers: ['SharpLambdaLayer', 'OnnxruntimeLambdaLayer'],
  },
} as const;

/** Every S3 grant of each role: "action pattern" (pattern "" = the bucket, for ListBucket). */
const S3_GRANTS: Record<string, string[]> = {
  FetchDatasetRole: [
    's3:AbortMultipartUpload datasets/_incoming/*',
    's3:DeleteObject datasets/_incoming/*',
    's3:GetObject datasets/*',
    's3:ListBucket  prefix datasets/*',
    's3:PutObject datasets/*',
  ],
  VerifyDatasetRole: [
    's3:GetObject datasets/*/images.tar',
    // An earlier verification of the same bytes and profile is reused (inventory.json, index.jsonl).
    's3:GetObject datasets/*/index.jsonl',
    's3:GetObject datasets/*/inventory.json',
    's3:ListBucket  prefix datasets/*/index.jsonl,datasets/*/inventory.json',
    's3:PutObject datasets/*/index.jsonl',
    's3:PutObject datasets/*/inventory.json',
  ],
  BuildManifestsRole: [
    's3:GetObject datasets/*/index.jsonl',
    's3:GetObject datasets/*/inventory.json',
    's3:PutObject runs/*/manifests/*',
    's3:PutObjectTagging runs/*/manifests/shards/*',
  ],
  PreprocessShardRole: [
    's3:GetObject cache/shards/*',
    's3:GetObject datasets/*/images.tar',
    's3:GetObject runs/*/manifests/classes.json',
    's3:GetObject runs/*/manifests/shards/*',
    's3:ListBucket  prefix cache/shards/*',
    's3:PutObject cache/shards/*',
    's3:PutObject runs/*/shards/*',
    's3:PutObjectTagging runs/*/shards/*',
  ],
  ValidateShardRole: [
    's3:GetObject runs/*/manifests/classes.json',
    's3:GetObject runs/*/model/*',
    's3:GetObject runs/*/shards/test/*',
    's3:PutObject runs/*/predictions/*',
    's3:PutObjectTagging runs/*/predictions/*',
  ],
  WriteReportRole: [
    's3:GetObject models/current.json',
    's3:GetObject runs/*/execution/resumes.json',
    's3:GetObject runs/*/manifests/classes.json',
    's3:GetObject runs/*/model/training.json',
    's3:GetObject runs/*/predictions/*',
    's3:GetObject runs/*/shards/test/*',
    's3:ListBucket  prefix models/*,runs/*/execution/*',
    's3:PutObject models/current.json',
    's3:PutObject reports/*',
  ],
  ReportFailureRole: ['s3:PutObject reports/*/failure.json'],
  ClassifyUploadRole: [
    's3:GetObject models/*',
    's3:GetObject runs/*/model/*',
    's3:GetObject uploads/*',
    's3:ListBucket  prefix models/*',
    's3:PutObject predictions/*',
  ],
  TrainJobRole: [
    's3:GetObject backbones/*',
    's3:GetObject cache/features/*',
    's3:GetObject runs/*/manifests/classes.json',
    's3:GetObject runs/*/shards/*',
    's3:ListBucket  prefix runs/*,cache/features/*',
    's3:PutObject cache/features/*',
    's3:PutObject runs/*/model/*',
  ],
  PipelineStateMachineRole: [],
  BatchInstanceRole: [],
};

/** What a state machine needs to log through CloudWatch Logs' log delivery and to trace. */
const LOG_DELIVERY_AND_XRAY = [
  'logs:CreateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:DescribeLogGroups',
  'logs:DescribeResourcePolicies',
  'logs:GetLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:UpdateLogDelivery',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'xray:PutTelemetryRecords',
  'xray:PutTraceSegments',
];

const IMAGE_SUFFIXES = ['.jpg', '.jpeg', '.png', '.webp', '.JPG', '.JPEG', '.PNG', '.WEBP'];

// ---------------------------------------------------------------- packaging, once

describe('serverless package (offline, no AWS account)', () => {
  let work: string;
  let pkg: string;
  let template: Template;
  let res: Record<string, Resource>;
  let bucketArn: string;
  let layers: LayerBuild;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'dogbreed-sls-'));
    // Packaged once per test run (test/helpers/serverless-package.ts), shared with the IAM test.
    ({ dir: pkg, template } = await packageService());
    // The layer build's own report (serverless.yml's plugin built the layers identically), after
    // the package so the two builds never write layers/ at the same time.
    const built = await run(process.execPath, [join(ROOT, 'layers/build-layers.mjs'), '--json'], {
      cwd: ROOT,
    });
    layers = JSON.parse(built.stdout) as LayerBuild;
    res = template.Resources;
    bucketArn = 'arn:${AWS::Partition}:s3:::dogbreed-pipeline-test-${AWS::AccountId}-${AWS::Region}';
  }, 480_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const ofType = (type: string) => Object.entries(res).filter(([, r]) => r.Type === type);
  /** The layers the template attaches to a function (logical ids). */
  const deployedLayers = (fn: string): string[] =>
    arr(res[`${fn}LambdaFunction`]!.Properties.Layers as { Ref: string }[] | undefined).map((l) => l.Ref);

  it('has one data bucket: named per stage/account/region, encrypted, private, versioned', () => {
    const buckets = ofType('AWS::S3::Bucket').map(([id]) => id);
    // ServerlessDeploymentBucket holds the artefacts serverless uploads; DataBucket is the one.
    expect(buckets.sort()).toEqual(['DataBucket', 'ServerlessDeploymentBucket']);
    const p = res.DataBucket!.Properties;
    expect(p.BucketName).toEqual({ 'Fn::Sub': 'dogbreed-pipeline-test-${AWS::AccountId}-${AWS::Region}' });
    expect(p.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
    });
    expect(p.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(p.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    // Every function is told this bucket, by the same name.
    for (const name of Object.keys(FUNCTIONS)) {
      const env = (res[`${name}LambdaFunction`]!.Properties.Environment as Obj).Variables as Obj;
      expect(env.DOGBREED_BUCKET, name).toEqual(p.BucketName);
    }
  });

  it('gives every function the Powertools service (stage included), metrics namespace and log level', () => {
    for (const name of Object.keys(FUNCTIONS)) {
      const env = (res[`${name}LambdaFunction`]!.Properties.Environment as Obj).Variables as Obj;
      expect(env, name).toMatchObject({
        POWERTOOLS_SERVICE_NAME: 'dogbreed-pipeline-test',
        POWERTOOLS_METRICS_NAMESPACE: 'DogbreedPipeline',
        POWERTOOLS_LOG_LEVEL: 'INFO',
      });
    }
  });

  it('refuses every request that is not TLS (≥ 1.2) to the bucket and its objects', () => {
    const policy = res.DataBucketPolicy!.Properties;
    expect(policy.Bucket).toEqual(ref('DataBucket'));
    const statements = (policy.PolicyDocument as Obj).Statement as unknown as Statement[];
    const objects = { 'Fn::Sub': '${DataBucket.Arn}/*' };
    expect(statements).toContainEqual({
      Sid: 'DenyInsecureTransport',
      Effect: 'Deny',
      Principal: '*',
      Action: 's3:*',
      Resource: [getAtt('DataBucket', 'Arn'), objects],
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    });
    expect(statements.every((s) => s.Effect === 'Deny')).toBe(true);
  });

  it('expires intermediate objects, stale incoming uploads and incomplete multipart uploads', () => {
    const rules = ((res.DataBucket!.Properties.LifecycleConfiguration as Obj).Rules as Obj[]).map((r) => {
      const { Id, ...rest } = r;
      return [Id, rest] as const;
    });
    expect(Object.fromEntries(rules)).toEqual({
      'abort-incomplete-multipart-uploads': {
        Status: 'Enabled',
        Prefix: '',
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
      },
      'expire-incoming-datasets': {
        Status: 'Enabled',
        Prefix: 'datasets/_incoming/',
        ExpirationInDays: 1,
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      },
      'expire-intermediate-run-objects': {
        Status: 'Enabled',
        Prefix: 'runs/',
        TagFilters: [{ Key: 'dogbreed-retention', Value: 'intermediate' }],
        ExpirationInDays: 14,
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      },
      'expire-step-cache': {
        Status: 'Enabled',
        Prefix: 'cache/',
        ExpirationInDays: 30,
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      },
      'expire-noncurrent-versions': {
        Status: 'Enabled',
        Prefix: '',
        NoncurrentVersionExpiration: { NoncurrentDays: 90 },
        ExpiredObjectDeleteMarker: true,
      },
    });
  });

  it('declares one function per Task state plus ClassifyUpload and ReportFailure, each sized and with its own role', () => {
    const functions = ofType('AWS::Lambda::Function').map(([id]) => id.replace(/LambdaFunction$/, ''));
    expect(functions.sort()).toEqual(Object.keys(FUNCTIONS).sort());
    expect(lambdaTasks.map(([n]) => n).sort()).toEqual(
      functions.filter((f) => f !== 'ClassifyUpload' && f !== 'ReportFailure').sort(),
    );
    const roles = new Set<string>();
    for (const [name, want] of Object.entries(FUNCTIONS)) {
      const p = res[`${name}LambdaFunction`]!.Properties;
      expect(p.Handler, name).toBe(want.handler);
      expect(p.Runtime, name).toBe(LAMBDA_RUNTIME);
      expect(p.Architectures, name).toEqual(['x86_64']);
      expect(p.MemorySize, name).toBe(want.memory);
      expect(p.Timeout, name).toBe(want.timeout);
      expect(p.Role, name).toEqual(getAtt(`${name}Role`, 'Arn'));
      roles.add(`${name}Role`);
      const layerRefs = arr(p.Layers as Json[] | undefined);
      expect(layerRefs, name).toEqual(want.layers.map(ref));
      const state = lambdaTasks.find(([n]) => n === name)?.[1];
      // A function never outlives the Task state that waits for it.
      if (state) expect(want.timeout, name).toBe(state.TimeoutSeconds);
    }
    expect(roles.size).toBe(Object.keys(FUNCTIONS).length);
    // No shared default role.
    expect(res.IamRoleLambdaExecution).toBeUndefined();
  });

  it('has no IAM statement with a wildcard action, and no S3 grant on * or the bare bucket but a prefix-limited list', () => {
    const roles = ofType('AWS::IAM::Role');
    expect(roles.map(([id]) => id).sort()).toEqual(Object.keys(S3_GRANTS).sort());
    for (const [id, role] of roles) {
      expect(arr(role.Properties.ManagedPolicyArns as Json[] | undefined), id).toEqual([]);
      for (const s of policyStatements(role)) {
        expect(s.Effect, id).toBe('Allow');
        for (const action of arr(s.Action))
          expect(action, `${id} ${action}`).toMatch(/^[a-z0-9-]+:[A-Za-z0-9]+$/);
        const s3Actions = arr(s.Action).filter((a) => a.startsWith('s3:'));
        if (!s3Actions.length) continue;
        for (const r of arr(s.Resource as Json)) {
          expect(r, id).not.toBe('*');
          const pattern = s3Pattern(r, bucketArn);
          expect(pattern, `${id}: S3 resource outside the data bucket: ${JSON.stringify(r)}`).toBeDefined();
          if (pattern === '') {
            expect(s3Actions, id).toEqual(['s3:ListBucket']);
            expect(Object.keys(s.Condition ?? {}), id).toEqual(['StringLike']);
          } else {
            expect(pattern, id).not.toBe('*');
            expect(s3Actions, id).not.toContain('s3:ListBucket');
          }
        }
      }
    }
  });

  it('grants each role exactly the S3 actions on the key prefixes its stage uses', () => {
    for (const [id, expected] of Object.entries(S3_GRANTS)) {
      const grants: string[] = [];
      for (const s of policyStatements(res[id]!)) {
        for (const action of arr(s.Action).filter((a) => a.startsWith('s3:'))) {
          for (const r of arr(s.Resource as Json)) {
            const pattern = s3Pattern(r, bucketArn);
            const prefix = ((s.Condition?.StringLike as Obj | undefined)?.['s3:prefix'] ?? []) as string[];
            grants.push(pattern === '' ? `${action}  prefix ${prefix.join(',')}` : `${action} ${pattern}`);
          }
        }
      }
      expect(grants.sort(), id).toEqual(expected);
    }
    // Nobody may delete a model, a report or the champion pointer.
    const deletes = Object.values(S3_GRANTS)
      .flat()
      .filter((g) => g.startsWith('s3:DeleteObject'));
    expect(deletes).toEqual(['s3:DeleteObject datasets/_incoming/*']);
  });

  it('lets each function write only its own log group', () => {
    for (const name of Object.keys(FUNCTIONS)) {
      const logs = policyStatements(res[`${name}Role`]!).filter((s) => arr(s.Action)[0]?.startsWith('logs:'));
      expect(logs, name).toEqual([
        {
          Effect: 'Allow',
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          Resource: {
            'Fn::Sub': `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/dogbreed-pipeline-test-${name}:*`,
          },
        },
      ]);
    }
  });

  it('sends uploads/<image> notifications, one per image suffix, to ClassifyUpload on the same bucket', () => {
    const notifications = res.DataBucket!.Properties.NotificationConfiguration as Obj;
    expect(Object.keys(notifications)).toEqual(['LambdaConfigurations']);
    const configs = notifications.LambdaConfigurations as Obj[];
    const filters = configs.map((c) => {
      expect(c.Event).toBe('s3:ObjectCreated:*');
      expect(c.Function).toEqual(getAtt('ClassifyUploadLambdaFunction', 'Arn'));
      const rules = ((c.Filter as Obj).S3Key as Obj).Rules as { Name: string; Value: string }[];
      return Object.fromEntries(rules.map((r) => [r.Name, r.Value]));
    });
    expect(filters).toEqual(IMAGE_SUFFIXES.map((suffix) => ({ prefix: 'uploads/', suffix })));
    // The handler classifies exactly what the notification sends.
    for (const suffix of IMAGE_SUFFIXES) expect(isUploadImageKey(`uploads/dog${suffix}`), suffix).toBe(true);
    const permission = res.ClassifyUploadS3Permission!;
    expect(permission.Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: getAtt('ClassifyUploadLambdaFunction', 'Arn'),
      Principal: 's3.amazonaws.com',
      SourceArn: { 'Fn::Sub': bucketArn },
      SourceAccount: ref('AWS::AccountId'),
    });
    // S3 validates the target when the bucket is configured: the permission comes first.
    expect(arr(res.DataBucket!.DependsOn)).toEqual(['ClassifyUploadS3Permission']);
    // And nothing the permission needs refers back to the bucket (no circular dependency).
    expect(JSON.stringify(res.ClassifyUploadLambdaFunction)).not.toContain('DataBucket');
    expect(JSON.stringify(res.ClassifyUploadRole)).not.toContain('DataBucket');
  });

  it('reports every execution of the pipeline that fails, times out or is stopped to ReportFailure, through EventBridge', () => {
    const rules = ofType('AWS::Events::Rule');
    expect(rules).toHaveLength(1);
    const [id, rule] = rules[0]!;
    const p = rule.Properties;
    expect(p.Name).toBe('dogbreed-pipeline-test-report-failure');
    expect(p.State).toBe('ENABLED');
    expect(p.EventBusName).toBeUndefined(); // the default bus, where Step Functions sends its events
    // Exactly what the handler parses: this state machine's ends other than success.
    expect(p.EventPattern).toEqual({
      source: ['aws.states'],
      'detail-type': [EXECUTION_STATUS_CHANGE],
      detail: { status: [...FAILED_STATUSES], stateMachineArn: [ref('PipelineStateMachine')] },
    });
    const targets = p.Targets as Obj[];
    expect(targets.map((t) => t.Arn)).toEqual([getAtt('ReportFailureLambdaFunction', 'Arn')]);
    // EventBridge may invoke it, from this rule only.
    const permissions = ofType('AWS::Lambda::Permission').filter(
      ([, r]) => r.Properties.Principal === 'events.amazonaws.com',
    );
    expect(permissions).toHaveLength(1);
    const permission = permissions[0]![1].Properties;
    expect(permission.Action).toBe('lambda:InvokeFunction');
    expect(permission.FunctionName).toEqual(getAtt('ReportFailureLambdaFunction', 'Arn'));
    expect(JSON.stringify(permission.SourceArn)).toContain(`"rule","${p.Name}"`);
    expect(id).toMatch(/EventBridgeRule/);
    // Its other grants: failure.json (above), its failure queue (below) and the history of this
    // state machine's executions.
    const others = policyStatements(res.ReportFailureRole!).filter(
      (s) => !arr(s.Action).some((a) => a.startsWith('s3:') || a.startsWith('logs:') || a.startsWith('sqs:')),
    );
    expect(others).toEqual([
      {
        Effect: 'Allow',
        Action: 'states:GetExecutionHistory',
        Resource: {
          'Fn::Sub':
            'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:dogbreed-pipeline-test:*',
        },
      },
    ]);
    expect(res.PipelineStateMachine!.Properties.StateMachineName).toBe('dogbreed-pipeline-test');
  });

  it('deploys statemachine/pipeline.asl.json unchanged, its placeholders bound to this stack', () => {
    const sm = res.PipelineStateMachine!.Properties;
    expect(sm.StateMachineType).toBe('STANDARD');
    expect(sm.RoleArn).toEqual(getAtt('PipelineStateMachineRole', 'Arn'));
    const definition = sm.DefinitionString;
    expect(typeof definition).toBe('string');
    expect(JSON.parse(definition as string)).toEqual(JSON.parse(aslText));
    const subs = sm.DefinitionSubstitutions as Obj;
    const expected: Obj = {
      TrainJobQueueArn: ref('TrainJobQueue'),
      TrainJobDefinitionArn: ref('TrainJobDefinition'),
    };
    for (const [state, s] of lambdaTasks) {
      expect(s.Resource).toBe(`\${${state}FunctionArn}`);
      expected[`${state}FunctionArn`] = getAtt(`${state}LambdaFunction`, 'Arn');
    }
    expect(subs).toEqual(expected);
    expect(placeholders(definition as string)).toEqual(Object.keys(subs).sort());
    // After substitution (as CloudFormation does it), the deployed definition is the ASL file's.
    const values = Object.fromEntries(
      Object.entries(subs).map(([k, v]) => [k, `arn:aws:resolved:${JSON.stringify(v).replace(/\W+/g, '-')}`]),
    );
    expect(JSON.parse(substitute(definition as string, values))).toEqual(
      JSON.parse(substitute(aslText, values)),
    );
  });

  it('lets the state machine invoke its functions and run the training job, nothing more', () => {
    const statements = policyStatements(res.PipelineStateMachineRole!);
    const invoke = statements.find((s) => arr(s.Action).includes('lambda:InvokeFunction'))!;
    const byJson = (a: Json, b: Json) => JSON.stringify(a).localeCompare(JSON.stringify(b));
    expect(arr(invoke.Resource as Json).sort(byJson)).toEqual(
      lambdaTasks.map(([n]) => getAtt(`${n}LambdaFunction`, 'Arn')).sort(byJson),
    );
    const actions = statements.flatMap((s) => arr(s.Action)).sort();
    expect(actions).toEqual([
      'batch:DescribeJobs',
      'batch:SubmitJob',
      'batch:TerminateJob',
      'events:DescribeRule',
      'events:PutRule',
      'events:PutTargets',
      'lambda:InvokeFunction',
      ...LOG_DELIVERY_AND_XRAY,
    ]);
    const submit = statements.find((s) => arr(s.Action).includes('batch:SubmitJob'))!;
    expect(arr(submit.Resource as Json)[0]).toEqual(ref('TrainJobQueue'));
    // The actions AWS offers no resource-level permission for: DescribeJobs, log delivery, X-Ray.
    const star = statements.filter((s) => arr(s.Resource as Json).includes('*'));
    expect(star.flatMap((s) => arr(s.Action)).sort()).toEqual([
      'batch:DescribeJobs',
      ...LOG_DELIVERY_AND_XRAY,
    ]);
  });

  it('trains on a GPU Batch queue: spot first, on-demand fallback, retrying lost hosts only', () => {
    const queue = res.TrainJobQueue!.Properties;
    expect(queue.ComputeEnvironmentOrder).toEqual([
      { Order: 1, ComputeEnvironment: ref('TrainSpotComputeEnvironment') },
      { Order: 2, ComputeEnvironment: ref('TrainOnDemandComputeEnvironment') },
    ]);
    for (const [id, type] of [
      ['TrainSpotComputeEnvironment', 'SPOT'],
      ['TrainOnDemandComputeEnvironment', 'EC2'],
    ] as const) {
      const ce = res[id]!.Properties;
      expect(ce.Type, id).toBe('MANAGED');
      const cr = ce.ComputeResources as Obj;
      expect(cr.Type, id).toBe(type);
      expect(cr.MinvCpus, id).toBe(0);
      expect(cr.MaxvCpus, id).toBe(16);
      expect((cr.InstanceTypes as string[]).length, id).toBeGreaterThan(0);
      for (const t of cr.InstanceTypes as string[]) expect(t, id).toMatch(/^(g4dn|g5|g6|p3|p4d)\./);
      expect(cr.Ec2Configuration, id).toEqual([{ ImageType: 'ECS_AL2023_NVIDIA' }]);
      expect(cr.LaunchTemplate, id).toEqual({
        LaunchTemplateId: ref('BatchLaunchTemplate'),
        Version: getAtt('BatchLaunchTemplate', 'LatestVersionNumber'),
      });
      expect(cr.InstanceRole, id).toEqual(getAtt('BatchInstanceProfile', 'Arn'));
      expect(cr.Subnets, id).toEqual(ref('BatchSubnetIds'));
    }
    // Typed, so CloudFormation refuses a deploy without real subnets (--param="batchSubnetIds=…").
    expect(template.Parameters.BatchSubnetIds).toMatchObject({
      Type: 'List<AWS::EC2::Subnet::Id>',
      Default: '',
    });
    expect(res.BatchInstanceProfile!.Properties.Roles).toEqual([ref('BatchInstanceRole')]);

    const job = res.TrainJobDefinition!.Properties;
    expect(job.Type).toBe('container');
    expect(job.PlatformCapabilities).toEqual(['EC2']);
    const container = job.ContainerProperties as Obj;
    expect(container.ResourceRequirements).toEqual([
      { Type: 'GPU', Value: '1' },
      { Type: 'VCPU', Value: '4' },
      { Type: 'MEMORY', Value: '14336' },
    ]);
    // The tag batch-job/build-image.sh pushed (--param="trainingImageTag=…"); "none" until then.
    expect(container.Image).toEqual({ 'Fn::Sub': '${TrainImageRepository.RepositoryUri}:none' });
    expect(container.JobRoleArn).toEqual(getAtt('TrainJobRole', 'Arn'));
    expect(container.LogConfiguration).toEqual({
      LogDriver: 'awslogs',
      Options: {
        'awslogs-group': ref('TrainLogGroup'),
        'awslogs-region': ref('AWS::Region'),
        'awslogs-stream-prefix': 'train',
      },
    });
    const env = Object.fromEntries(
      (container.Environment as { Name: string; Value: Json }[]).map((e) => [e.Name, e.Value]),
    );
    expect(env.DOGBREED_BUCKET).toEqual(res.DataBucket!.Properties.BucketName);
    const retry = job.RetryStrategy as { Attempts: number; EvaluateOnExit: Obj[] };
    expect(retry.Attempts).toBeGreaterThan(1);
    expect(retry.EvaluateOnExit[0]).toEqual({ OnStatusReason: 'Host EC2*', Action: 'RETRY' });
    expect(retry.EvaluateOnExit.at(-1)).toEqual({ OnReason: '*', Action: 'EXIT' });
    expect(res.TrainJobRole!.Properties.AssumeRolePolicyDocument).toMatchObject({
      Statement: [{ Principal: { Service: 'ecs-tasks.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    });
    expect(res.TrainImageRepository!.Type).toBe('AWS::ECR::Repository');
    expect(res.TrainImageRepository!.Properties.ImageTagMutability).toBe('IMMUTABLE');
  });

  it('gives TrainModel time for every Batch attempt, each after the longest RUNNABLE wait', () => {
    const job = res.TrainJobDefinition!.Properties;
    const attempts = (job.RetryStrategy as { Attempts: number }).Attempts;
    const perAttempt = (job.Timeout as { AttemptDurationSeconds: number }).AttemptDurationSeconds;
    const [limit] = res.TrainJobQueue!.Properties.JobStateTimeLimitActions as Obj[];
    expect(limit).toMatchObject({ Action: 'CANCEL', State: 'RUNNABLE' });
    expect(limit!.MaxTimeSeconds).toEqual(ref('BatchRunnableTimeoutSeconds'));
    // Batch's own bounds for MaxTimeSeconds; the parameter's MaxValue is what a deploy may set.
    const runnable = template.Parameters.BatchRunnableTimeoutSeconds!;
    expect(runnable).toMatchObject({ Type: 'Number', Default: 1800, MinValue: 600 });
    const maxRunnable = Number(runnable.MaxValue);
    expect(maxRunnable).toBeLessThanOrEqual(86_400);
    // A spot reclaim late in attempt n still leaves attempt n+1 its full time, RUNNABLE wait included.
    const stateTimeout = asl.States.TrainModel!.TimeoutSeconds as number;
    expect(attempts * (perAttempt + maxRunnable)).toBeLessThanOrEqual(stateTimeout);
    // The cancel reason says what to do: it is what failure.json and the CLI show.
    expect(limit!.Reason).toMatch(/^no GPU capacity: .*vCPU quota/);
  });

  it('runs the GPU instances with IMDSv2 only', () => {
    const lt = res.BatchLaunchTemplate!;
    expect(lt.Type).toBe('AWS::EC2::LaunchTemplate');
    expect((lt.Properties.LaunchTemplateData as Obj).MetadataOptions).toMatchObject({
      HttpTokens: 'required',
      HttpEndpoint: 'enabled',
    });
  });

  it('refuses a deploy whose stack-made security group would land outside the subnets’ VPC', () => {
    // CloudFormation evaluates Rules on the parameter values before it changes anything; this
    // evaluates the same rule functions over the template's rule.
    const rules = template.Rules ?? {};
    const failures = (params: Record<string, string>) =>
      Object.values(rules).flatMap((rule) =>
        rule.RuleCondition === undefined || evalRule(rule.RuleCondition, params)
          ? rule.Assertions.filter((a) => !evalRule(a.Assert, params)).map((a) => a.AssertDescription)
          : [],
      );
    const subnets = { BatchSubnetIds: 'subnet-0a,subnet-0b' };
    expect(failures({ ...subnets, BatchSecurityGroupIds: '', BatchVpcId: '' })).toEqual([
      expect.stringMatching(/^batchVpcId is required when batchSecurityGroupIds is empty/),
    ]);
    expect(failures({ ...subnets, BatchSecurityGroupIds: '', BatchVpcId: 'vpc-0abc' })).toEqual([]);
    expect(failures({ ...subnets, BatchSecurityGroupIds: 'sg-0abc', BatchVpcId: '' })).toEqual([]);
    // The group is made in that VPC, and only when no groups are given.
    expect(res.BatchSecurityGroup!.Condition).toBe('CreateBatchSecurityGroup');
    expect(res.BatchSecurityGroup!.Properties.VpcId).toEqual(ref('BatchVpcId'));
    expect(template.Conditions?.CreateBatchSecurityGroup).toEqual({
      'Fn::Equals': [ref('BatchSecurityGroupIds'), ''],
    });
  });

  it('logs and traces the state machine and traces every function', () => {
    const sm = res.PipelineStateMachine!.Properties;
    expect(sm.LoggingConfiguration).toEqual({
      Level: 'ERROR',
      IncludeExecutionData: false,
      Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: getAtt('PipelineLogGroup', 'Arn') } }],
    });
    expect(sm.TracingConfiguration).toEqual({ Enabled: true });
    expect(res.PipelineLogGroup!.Properties.LogGroupName).toBe(
      '/aws/vendedlogs/states/dogbreed-pipeline-test',
    );
    const tracing = res.LambdaTracingPolicy!.Properties;
    const traced = arr(tracing.Roles as { Ref: string }[]).map((r) => r.Ref);
    expect(traced.sort()).toEqual(
      Object.keys(FUNCTIONS)
        .map((f) => `${f}Role`)
        .sort(),
    );
    expect((tracing.PolicyDocument as Obj).Statement).toEqual([
      { Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' },
    ]);
    for (const name of Object.keys(FUNCTIONS)) {
      expect(res[`${name}LambdaFunction`]!.Properties.TracingConfig, name).toEqual({ Mode: 'Active' });
    }
  });

  it('keeps upload events ClassifyUpload failed on in a queue, and caps its concurrency', () => {
    const config = ofType('AWS::Lambda::EventInvokeConfig');
    expect(config.map(([id]) => id).sort()).toEqual([
      'ClassifyUploadLambdaEvConf',
      'ReportFailureLambdaEvConf',
    ]);
    expect(config.find(([id]) => id === 'ClassifyUploadLambdaEvConf')![1].Properties).toMatchObject({
      FunctionName: ref('ClassifyUploadLambdaFunction'),
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: getAtt('UploadFailureQueue', 'Arn') } },
    });
    expect(res.ClassifyUploadLambdaFunction!.Properties.ReservedConcurrentExecutions).toBe(10);
    // Its role may send there (the framework adds nothing to a function's own role).
    const send = policyStatements(res.ClassifyUploadRole!).filter((s) =>
      arr(s.Action).includes('sqs:SendMessage'),
    );
    expect(send).toEqual([
      { Effect: 'Allow', Action: 'sqs:SendMessage', Resource: getAtt('UploadFailureQueue', 'Arn') },
    ]);
    expect(template.Outputs.UploadFailureQueueUrl?.Value).toEqual(ref('UploadFailureQueue'));
  });

  it('keeps execution status events ReportFailure failed on in a queue of their own', () => {
    const config = ofType('AWS::Lambda::EventInvokeConfig').find(
      ([id]) => id === 'ReportFailureLambdaEvConf',
    );
    expect(config?.[1].Properties).toMatchObject({
      FunctionName: ref('ReportFailureLambdaFunction'),
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: getAtt('ReportFailureQueue', 'Arn') } },
    });
    expect(res.ReportFailureQueue!.Type).toBe('AWS::SQS::Queue');
    const send = policyStatements(res.ReportFailureRole!).filter((s) =>
      arr(s.Action).includes('sqs:SendMessage'),
    );
    expect(send).toEqual([
      { Effect: 'Allow', Action: 'sqs:SendMessage', Resource: getAtt('ReportFailureQueue', 'Arn') },
    ]);
    expect(template.Outputs.ReportFailureQueueUrl?.Value).toEqual(ref('ReportFailureQueue'));
  });

  it('alarms on failed executions, function errors and throttles, and failed uploads', () => {
    const alarms = Object.fromEntries(ofType('AWS::CloudWatch::Alarm').map(([id, r]) => [id, r.Properties]));
    expect(Object.keys(alarms).sort()).toEqual([
      'FunctionErrorsAlarm',
      'FunctionThrottlesAlarm',
      'PipelineExecutionsFailedAlarm',
      'UploadFailuresAlarm',
    ]);
    expect(alarms.PipelineExecutionsFailedAlarm).toMatchObject({
      Namespace: 'AWS/States',
      MetricName: 'ExecutionsFailed',
      Dimensions: [{ Name: 'StateMachineArn', Value: ref('PipelineStateMachine') }],
    });
    expect(alarms.UploadFailuresAlarm).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('UploadFailureQueue', 'QueueName') }],
    });
    // Summed over every function: each one's metric is in the expression.
    for (const [id, metric] of [
      ['FunctionErrorsAlarm', 'Errors'],
      ['FunctionThrottlesAlarm', 'Throttles'],
    ] as const) {
      const metrics = alarms[id]!.Metrics as Obj[];
      const [total, ...each] = metrics;
      expect(total!.Expression, id).toBe(`SUM([${each.map((m) => m.Id).join(', ')}])`);
      const fns = each.map((m) => {
        const stat = (m.MetricStat as Obj).Metric as Obj;
        expect(stat.MetricName, id).toBe(metric);
        return ((stat.Dimensions as Obj[])[0]!.Value as { Ref: string }).Ref;
      });
      expect(fns.sort(), id).toEqual(
        Object.keys(FUNCTIONS)
          .map((f) => `${f}LambdaFunction`)
          .sort(),
      );
    }
    for (const [id, alarm] of Object.entries(alarms)) {
      expect(alarm.Threshold, id).toBe(1);
      expect(alarm.ComparisonOperator, id).toBe('GreaterThanOrEqualToThreshold');
      // Notifications go to alarmTopicArn where one is given.
      expect(alarm.AlarmActions, id).toEqual({
        'Fn::If': ['HasAlarmTopic', [''], ref('AWS::NoValue')],
      });
    }
  });

  it('conforms to the CloudFormation resource specification (every resource and property)', async () => {
    const checker = new SpecChecker(await loadSpec());
    expect(formatProblems(checker.check(template))).toBe('');
    // A misspelt nested property is caught, named by its resource and path.
    const broken = structuredClone(template);
    const cr = broken.Resources.TrainSpotComputeEnvironment!.Properties.ComputeResources as Obj;
    cr.InstanceType = cr.InstanceTypes!;
    delete cr.InstanceTypes;
    expect(checker.check(broken)).toEqual([
      {
        path: 'TrainSpotComputeEnvironment.Properties.ComputeResources.InstanceType',
        message: expect.stringMatching(
          /^ComputeResources has no property InstanceType \(it has: .*InstanceTypes/,
        ),
      },
    ]);
  }, 120_000);

  it('outputs the bucket, the state machine, the job queue and the image repository', () => {
    expect(template.Outputs.BucketName?.Value).toEqual(ref('DataBucket'));
    expect(template.Outputs.StateMachineArn?.Value).toEqual(ref('PipelineStateMachine'));
    expect(template.Outputs.TrainJobQueueArn?.Value).toEqual(ref('TrainJobQueue'));
    expect(template.Outputs.TrainImageRepositoryUri?.Value).toEqual(
      getAtt('TrainImageRepository', 'RepositoryUri'),
    );
  });

  it('keeps every function, with its layers, under Lambda’s size limits', async () => {
    const layerZip: Record<string, string> = {
      SharpLambdaLayer: join(pkg, 'sharp.zip'),
      OnnxruntimeLambdaLayer: join(pkg, 'onnxruntime.zip'),
    };
    for (const [id, file] of Object.entries(layerZip)) {
      expect(res[id]?.Type, id).toBe('AWS::Lambda::LayerVersion');
      expect(res[id]!.Properties.CompatibleArchitectures, id).toEqual(['x86_64']);
      expect(res[id]!.Properties.CompatibleRuntimes, id).toEqual([LAMBDA_RUNTIME]);
      expect((await stat(file)).size, id).toBeLessThan(ZIPPED_LIMIT);
    }
    // What build-layers.mjs reported is what the zips hold.
    for (const l of layers.layers) {
      expect(
        unzippedSize(layerZip[l.name === 'sharp' ? 'SharpLambdaLayer' : 'OnnxruntimeLambdaLayer']!),
      ).toBe(l.bytes);
    }
    for (const name of Object.keys(FUNCTIONS)) {
      const zip = join(pkg, `${name}.zip`);
      const zipped = (await stat(zip)).size;
      expect(zipped, name).toBeLessThan(ZIPPED_LIMIT);
      const attached = deployedLayers(name);
      const total = unzippedSize(zip) + attached.reduce((sum, l) => sum + unzippedSize(layerZip[l]!), 0);
      expect(total, name).toBeLessThan(UNZIPPED_LIMIT);
    }
    // onnxruntime-node ships every platform: only linux-x64 may be in the layer.
    const ort = readZip(readFileSync(layerZip.OnnxruntimeLambdaLayer!)).map((e) => e.name);
    const natives = ort.filter((n) => /\.(node|so(\.\d+)*|dll|dylib)$/.test(n)).sort();
    expect(natives).toEqual([
      'nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1',
      'nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
    ]);
    const sharpNatives = readZip(readFileSync(layerZip.SharpLambdaLayer!))
      .map((e) => e.name)
      .filter((n) => /\.(node|so(\.\d+)*|dll|dylib)$/.test(n));
    expect(
      sharpNatives.every(
        (n) => n.includes('/@img/sharp-linux-x64/') || n.includes('/@img/sharp-libvips-linux-x64/'),
      ),
    ).toBe(true);
    expect(sharpNatives.length).toBe(2);
  });

  it('each function bundle loads with its layers alone, as in Lambda (no repository node_modules)', async () => {
    const node = await lambdaNode();
    const model = join(work, 'tiny.onnx');
    await writeFile(model, buildTinyBackbone({ inputSize: 16 }));
    const layerOf: Record<string, string> = {
      SharpLambdaLayer: join(pkg, 'sharp.zip'),
      OnnxruntimeLambdaLayer: join(pkg, 'onnxruntime.zip'),
    };
    const checks = Object.keys(FUNCTIONS).map(async (name) => {
      // /var/task ≈ task/, the layers' nodejs/node_modules ≈ node_modules/ above it (the Lambda
      // runtime resolves ESM imports from /opt/nodejs/node_modules; here the parent folder does).
      const sandbox = join(work, 'lambda', name);
      await extractZip(join(pkg, `${name}.zip`), join(sandbox, 'task'));
      const attached = deployedLayers(name);
      for (const l of attached) {
        const opt = join(sandbox, 'opt', l);
        await extractZip(layerOf[l]!, opt);
        for (const dep of await readdir(join(opt, 'nodejs/node_modules'))) {
          await mkdir(join(sandbox, 'node_modules'), { recursive: true });
          await run('cp', ['-R', join(opt, 'nodejs/node_modules', dep), join(sandbox, 'node_modules/')]);
        }
      }
      const handler = res[`${name}LambdaFunction`]!.Properties.Handler as string;
      const file = join(sandbox, 'task', `${handler.replace(/\.handler$/, '')}.mjs`);
      const script = [
        `const m = await import(${JSON.stringify(file)});`,
        `if (typeof m.handler !== 'function') throw new Error('no handler export');`,
        `const { createRequire } = await import('node:module');`,
        `const req = createRequire(${JSON.stringify(join(sandbox, 'task', 'x.js'))});`,
        `const out = {};`,
        `try { const sharp = req('sharp'); const png = await sharp({ create: { width: 3, height: 2, channels: 3, background: '#08f' } }).png().toBuffer(); out.sharp = (await sharp(png).metadata()).width; } catch (e) { out.sharp = String(e.code ?? e.message); }`,
        `try { const ort = req('onnxruntime-node'); const s = await ort.InferenceSession.create(${JSON.stringify(model)}); out.ort = s.inputNames.length; } catch (e) { out.ort = String(e.code ?? e.message); }`,
        `out.node = process.version;`,
        `console.log(JSON.stringify(out));`,
      ].join('\n');
      // On the Node major Lambda runs (nodejs24.x), not the one running the tests.
      const { stdout } = await run(node, ['--input-type=module', '-e', script], {
        cwd: sandbox,
        env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      });
      const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
        sharp: number | string;
        ort: number | string;
        node: string;
      };
      expect(out.node, name).toMatch(new RegExp(`^v${LAMBDA_NODE_MAJOR}\\.`));
      const hasSharp = attached.includes('SharpLambdaLayer');
      const hasOrt = attached.includes('OnnxruntimeLambdaLayer');
      expect(out.sharp, name).toBe(hasSharp ? 3 : 'MODULE_NOT_FOUND');
      expect(out.ort, name).toBe(hasOrt ? 1 : 'MODULE_NOT_FOUND');
    });
    await Promise.all(checks);
    expect(
      existsSync(join(tmpdir(), 'node_modules')),
      'a node_modules above the sandbox would hide a missing layer',
    ).toBe(false);
  }, 60_000);
  // The largest model the pipeline ships is the two-backbone ensemble (int8 MobileNetV2 +
  // ResNet-50 stored in float16, float32 once loaded), with the test-time flip (a batch twice as
  // big). Its peak RSS is measured here, in Node processes of their own running the serving code
  // (scripts/serving-memory.ts): ClassifyUpload with as many models as its cache holds, Validate
  // with a full batch, its session in a worker thread. The memory setting must cover it with a
  // quarter to spare (Lambda's MB are MiB). Measured 2026-12: about 0.8 GiB each, see
  // BENCHMARKS.md.
  describeShared('memory for the largest model (real backbones in ../shared)', () => {
    const MARGIN = 1.25;
    it('ClassifyUpload and ValidateShard hold the measured peak RSS of the ensemble, /tmp its cached copies', async () => {
      const model = await buildServingModel([SHARED_BACKBONE, SHARED_RESNET50], { flip: true });
      const image = join(SHARED_SAMPLE_DIR, readdirSync(SHARED_SAMPLE_DIR)[0]!);
      const photo = join(image, readdirSync(image)[0]!);
      const node = await lambdaNode();
      const [upload, shard] = await Promise.all([
        measureServing(model, photo, { batch: 1, loaded: MAX_LOADED }, node),
        measureServing(model, photo, { batch: VALIDATE_BATCH, loaded: 1, ...VALIDATE_LOAD }, node),
      ]);
      const memory = (fn: string) => res[`${fn}LambdaFunction`]!.Properties.MemorySize as number;
      expect(memory('ClassifyUpload')).toBeGreaterThanOrEqual(Math.ceil(upload.peakRssMiB * MARGIN));
      expect(memory('ValidateShard')).toBeGreaterThanOrEqual(Math.ceil(shard.peakRssMiB * MARGIN));
      // Both cache models in /tmp (at most MAX_LOADED kept): Lambda's default 512 MB is enough.
      for (const fn of ['ClassifyUpload', 'ValidateShard']) {
        const tmp = (res[`${fn}LambdaFunction`]!.Properties.EphemeralStorage as { Size: number } | undefined)
          ?.Size;
        expect(tmp ?? 512, fn).toBeGreaterThanOrEqual(Math.ceil(upload.modelMiB * MAX_LOADED * MARGIN));
      }
    }, 120_000);
  });
});
