import { readFileSync } from 'node:fs';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { DEFINITION_PATH } from '../../src/local/definition.ts';
import type { RecordedCall } from '../../src/storage/call-log.ts';

// The packaged CloudFormation template read as IAM sees the deployed stack: the stage's concrete
// names substituted (account, region, partition, bucket, function and Batch ARNs), each Lambda
// function and Batch job mapped to its role, S3 API calls turned into the IAM requests S3
// authorises, and every request evaluated with @cloud-copilot/iam-simulate.

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';
export const PARTITION = 'aws';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };
interface Resource {
  Type: string;
  Properties: Obj;
}
export interface Template {
  Resources: Record<string, Resource>;
}
interface PolicyDocument {
  Version: string;
  Statement: Obj[];
}

/** One request as IAM authorises it. */
export interface IamRequest {
  action: string;
  resource: string;
  context: Record<string, string>;
}

const PSEUDO: Record<string, string> = {
  'AWS::AccountId': ACCOUNT,
  'AWS::Region': REGION,
  'AWS::Partition': PARTITION,
  'AWS::URLSuffix': 'amazonaws.com',
};

/** Resolves intrinsic functions in `value` the way CloudFormation would for this stack. */
export class StackResolver {
  constructor(readonly template: Template) {}

  private resource(id: string): Resource {
    const r = this.template.Resources[id];
    if (!r) throw new Error(`the template has no resource ${id}`);
    return r;
  }

  private prop(id: string, name: string): string {
    return this.string(this.resource(id).Properties[name] as Json, `${id}.${name}`);
  }

  ref(id: string): string {
    if (PSEUDO[id]) return PSEUDO[id];
    const r = this.resource(id);
    const arn = (service: string, path: string) => `arn:${PARTITION}:${service}:${REGION}:${ACCOUNT}:${path}`;
    switch (r.Type) {
      case 'AWS::Lambda::Function':
        return this.prop(id, 'FunctionName');
      case 'AWS::S3::Bucket':
        return this.prop(id, 'BucketName');
      case 'AWS::Batch::JobQueue':
        return arn('batch', `job-queue/${this.prop(id, 'JobQueueName')}`);
      case 'AWS::Batch::JobDefinition':
        return arn('batch', `job-definition/${this.prop(id, 'JobDefinitionName')}:1`);
      case 'AWS::IAM::Role':
        return id;
      case 'AWS::StepFunctions::StateMachine':
        return arn('states', `stateMachine:${this.prop(id, 'StateMachineName')}`);
      default:
        throw new Error(`Ref ${id} (${r.Type}): not resolvable here; extend StackResolver.ref`);
    }
  }

  getAtt(id: string, attr: string): string {
    const r = this.resource(id);
    const arn = (service: string, path: string) => `arn:${PARTITION}:${service}:${REGION}:${ACCOUNT}:${path}`;
    if (attr === 'Arn') {
      switch (r.Type) {
        case 'AWS::Lambda::Function':
          return arn('lambda', `function:${this.ref(id)}`);
        case 'AWS::S3::Bucket':
          return `arn:${PARTITION}:s3:::${this.ref(id)}`;
        case 'AWS::IAM::Role':
          return `arn:${PARTITION}:iam::${ACCOUNT}:role/${id}`;
        case 'AWS::Logs::LogGroup':
          return arn('logs', `log-group:${this.prop(id, 'LogGroupName')}:*`);
        case 'AWS::ECR::Repository':
          return arn('ecr', `repository/${this.prop(id, 'RepositoryName')}`);
        case 'AWS::SQS::Queue':
          return arn('sqs', this.prop(id, 'QueueName'));
      }
    }
    throw new Error(`Fn::GetAtt ${id}.${attr} (${r.Type}): not resolvable here; extend StackResolver.getAtt`);
  }

  string(value: Json, where: string): string {
    const v = this.resolve(value);
    if (typeof v !== 'string') throw new Error(`${where} does not resolve to a string: ${JSON.stringify(v)}`);
    return v;
  }

  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const [fn] = keys as [string];
      const arg = value[fn] as Json;
      if (fn === 'Ref') return this.ref(arg as string);
      if (fn === 'Fn::GetAtt') {
        const [id, attr] = (typeof arg === 'string' ? arg.split('.') : arg) as [string, string];
        return this.getAtt(id, attr);
      }
      if (fn === 'Fn::Join') {
        const [sep, parts] = arg as [string, Json[]];
        return parts.map((p, i) => this.string(p, `Fn::Join part ${i}`)).join(sep);
      }
      if (fn === 'Fn::Sub') {
        const [text, vars] = (typeof arg === 'string' ? [arg, {}] : arg) as [string, Obj];
        return text.replace(/\$\{([^}!][^}]*)\}/g, (_m, name: string) => {
          if (vars[name] !== undefined) return this.string(vars[name] as Json, `Fn::Sub variable ${name}`);
          const dot = name.indexOf('.');
          return dot > 0 && !name.startsWith('AWS::')
            ? this.getAtt(name.slice(0, dot), name.slice(dot + 1))
            : this.ref(name);
        });
      }
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
  }

  /** The role's inline policies, resolved. */
  policies(roleId: string): PolicyDocument[] {
    const role = this.resource(roleId);
    if (role.Type !== 'AWS::IAM::Role') throw new Error(`${roleId} is a ${role.Type}, not an IAM role`);
    const policies = (role.Properties.Policies ?? []) as Obj[];
    return policies.map((p) => this.resolve(p.PolicyDocument as Json) as unknown as PolicyDocument);
  }

  /** The data bucket's name in this stage. */
  get bucketName(): string {
    return this.ref('DataBucket');
  }

  /** The bucket policy of the data bucket, resolved. */
  bucketPolicy(): PolicyDocument | undefined {
    const [entry] = Object.values(this.template.Resources).filter(
      (r) =>
        r.Type === 'AWS::S3::BucketPolicy' && JSON.stringify(r.Properties.Bucket) === '{"Ref":"DataBucket"}',
    );
    return entry
      ? (this.resolve(entry.Properties.PolicyDocument as Json) as unknown as PolicyDocument)
      : undefined;
  }

  private roleIdOf(arn: Json, where: string): string {
    const v = (arn as Obj)?.['Fn::GetAtt'] as [string, string] | undefined;
    if (v?.[1] !== 'Arn') throw new Error(`${where} is not Fn::GetAtt <role>.Arn: ${JSON.stringify(arn)}`);
    return v[0];
  }

  /**
   * The role a caller runs as: a Lambda function's execution role, or, for a Task state that
   * submits a Batch job, the job definition's job role (via the state machine's substitutions).
   */
  roleOf(caller: string): string {
    const fn = this.template.Resources[`${caller}LambdaFunction`];
    if (fn) return this.roleIdOf(fn.Properties.Role as Json, `${caller}LambdaFunction.Role`);
    const state = findState(caller);
    const placeholder = /^\$\{(\w+)\}$/.exec(
      String((state?.Parameters as Obj | undefined)?.JobDefinition),
    )?.[1];
    if (!placeholder) throw new Error(`${caller} is neither a Lambda function nor a Batch job state`);
    const jobDef = (this.substitutions()[placeholder] as Obj | undefined)?.Ref as string | undefined;
    if (!jobDef) throw new Error(`DefinitionSubstitutions.${placeholder} is not a Ref to a job definition`);
    const container = this.resource(jobDef).Properties.ContainerProperties as Obj;
    return this.roleIdOf(container.JobRoleArn as Json, `${jobDef}.ContainerProperties.JobRoleArn`);
  }

  /** The state machine's DefinitionSubstitutions (the ASL placeholders), unresolved. */
  substitutions(): Obj {
    const [sm] = Object.values(this.template.Resources).filter(
      (r) => r.Type === 'AWS::StepFunctions::StateMachine',
    );
    if (!sm) throw new Error('the template has no state machine');
    return sm.Properties.DefinitionSubstitutions as Obj;
  }

  /** The state machine's role (logical id). */
  stateMachineRole(): string {
    const [sm] = Object.values(this.template.Resources).filter(
      (r) => r.Type === 'AWS::StepFunctions::StateMachine',
    );
    return this.roleIdOf(sm!.Properties.RoleArn as Json, 'state machine RoleArn');
  }
}

type State = Obj & { Type: string };
const asl = JSON.parse(readFileSync(DEFINITION_PATH, 'utf8')) as { States: Record<string, State> };

/** Every state of the definition, Map processors included. */
export function allStates(states: Record<string, State> = asl.States): [string, State][] {
  return Object.entries(states).flatMap(([name, s]) => {
    const inner = s.ItemProcessor as { States: Record<string, State> } | undefined;
    return [[name, s] as [string, State], ...(inner ? allStates(inner.States) : [])];
  });
}

function findState(name: string): State | undefined {
  return allStates().find(([n]) => n === name)?.[1];
}

// ---------------------------------------------------------------- S3 API → IAM

const objectArn = (bucket: string, key: string) => `arn:${PARTITION}:s3:::${bucket}/${key}`;
const bucketArn = (bucket: string) => `arn:${PARTITION}:s3:::${bucket}`;

/** CopyObject's CopySource ("bucket/url-encoded key", maybe "?versionId=") → bucket and key. */
function copySource(source: string): { bucket: string; key: string } {
  const path = decodeURIComponent(source.replace(/^\//, '').split('?')[0]!);
  const slash = path.indexOf('/');
  return { bucket: path.slice(0, slash), key: path.slice(slash + 1) };
}

/**
 * The IAM requests S3 authorises for one SDK call (the S3 "actions, resources and condition
 * keys" reference): HEAD is s3:GetObject, a listing is s3:ListBucket on the bucket with
 * s3:prefix, multipart parts are s3:PutObject, a copy reads its source and writes its target,
 * tags on a write need s3:PutObjectTagging too. An unknown command is an error, so a new call
 * in the code fails the test until it is mapped here.
 */
export function iamRequests(call: RecordedCall): IamRequest[] {
  const obj = (action: string): IamRequest => ({
    action,
    resource: objectArn(call.bucket, call.key ?? ''),
    context: {},
  });
  const tagging = call.tagging ? [obj('s3:PutObjectTagging')] : [];
  switch (call.command) {
    case 'GetObject':
    case 'HeadObject':
      // A missing key (a read-if-present, or a HEAD): on AWS a 403 unless listing is allowed, and
      // the store then lists the key.
      return call.missing
        ? [
            obj('s3:GetObject'),
            {
              action: 's3:ListBucket',
              resource: bucketArn(call.bucket),
              context: { 's3:prefix': call.key ?? '' },
            },
          ]
        : [obj('s3:GetObject')];
    case 'PutObject':
    case 'CreateMultipartUpload':
      return [obj('s3:PutObject'), ...tagging];
    case 'UploadPart':
    case 'CompleteMultipartUpload':
      return [obj('s3:PutObject')];
    case 'AbortMultipartUpload':
      return [obj('s3:AbortMultipartUpload')];
    case 'ListParts':
      return [obj('s3:ListMultipartUploadParts')];
    case 'DeleteObject':
    case 'DeleteObjects':
      return [obj('s3:DeleteObject')];
    case 'PutObjectTagging':
      return [obj('s3:PutObjectTagging')];
    case 'GetObjectTagging':
      return [obj('s3:GetObjectTagging')];
    case 'CopyObject': {
      const from = copySource(call.copySource ?? '');
      return [
        { action: 's3:GetObject', resource: objectArn(from.bucket, from.key), context: {} },
        obj('s3:PutObject'),
        ...tagging,
      ];
    }
    case 'ListObjectsV2':
    case 'ListObjects':
      return [
        {
          action: 's3:ListBucket',
          resource: bucketArn(call.bucket),
          context: { 's3:prefix': call.prefix ?? '' },
        },
      ];
    default:
      throw new Error(
        `${call.caller ?? 'an untagged caller'} made an S3 ${call.command} call, which test/helpers/iam.ts does not map to IAM yet`,
      );
  }
}

// ---------------------------------------------------------------- simulation

export type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';

/** Resource account of a request: S3 ARNs carry none, everything here is the stack's account. */
export async function simulate(stack: StackResolver, roleId: string, request: IamRequest): Promise<Decision> {
  const onDataBucket =
    request.resource === bucketArn(stack.bucketName) ||
    request.resource.startsWith(`${bucketArn(stack.bucketName)}/`);
  const policy = onDataBucket ? stack.bucketPolicy() : undefined;
  const response = await runSimulation(
    {
      identityPolicies: stack.policies(roleId).map((p, i) => ({ name: `${roleId}-${i}`, policy: p })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(policy ? { resourcePolicy: policy } : {}),
      request: {
        action: request.action,
        principal: `arn:${PARTITION}:sts::${ACCOUNT}:assumed-role/${roleId}/session`,
        resource: { accountId: ACCOUNT, resource: request.resource },
        // The SDK speaks TLS 1.2+ to AWS: the bucket policy's transport denials must not apply.
        contextVariables: {
          'aws:SecureTransport': 'true',
          ...(request.action.startsWith('s3:') ? { 's3:TlsVersion': '1.3' } : {}),
          ...request.context,
        },
      },
    } as never,
    {},
  );
  if (response.resultType === 'error') {
    throw new Error(
      `iam-simulate refused ${request.action} ${request.resource}: ${JSON.stringify(response.errors)}`,
    );
  }
  return response.overallResult as Decision;
}
