import type { SpecDatabase } from '@aws-cdk/service-spec-types';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Json, loadSpec, SpecChecker } from './helpers/cfn-spec.ts';

// The CloudFormation spec checker (test/helpers/cfn-spec.ts) on small hand-written templates:
// one of each kind of refusal, and the intrinsic functions it must let through.

let checker: SpecChecker;

beforeAll(async () => {
  const db: SpecDatabase = await loadSpec();
  checker = new SpecChecker(db);
}, 120_000);

const queue = (props: Record<string, Json>) => ({
  Type: 'AWS::Batch::JobQueue',
  Properties: {
    Priority: 1,
    ComputeEnvironmentOrder: [{ Order: 1, ComputeEnvironment: { Ref: 'Env' } }],
    ...props,
  },
});

const environment = (resources: Record<string, Json>) => ({
  Type: 'AWS::Batch::ComputeEnvironment',
  Properties: {
    Type: 'MANAGED',
    ComputeResources: {
      Type: 'SPOT',
      MaxvCpus: 16,
      Subnets: { Ref: 'BatchSubnetIds' },
      InstanceTypes: ['g5.xlarge'],
      ...resources,
    },
  },
});

const check = (resources: Record<string, Json>) => checker.check({ Resources: resources });

describe('SpecChecker', () => {
  it('accepts resources that conform, intrinsic functions wherever a value goes', () => {
    expect(
      check({
        Queue: queue({
          JobQueueName: { 'Fn::Sub': '${AWS::StackName}-train' },
          State: 'ENABLED',
          JobStateTimeLimitActions: [
            { Action: 'CANCEL', State: 'RUNNABLE', MaxTimeSeconds: { Ref: 'Limit' }, Reason: 'no capacity' },
          ],
        }),
        Env: environment({
          SecurityGroupIds: {
            'Fn::If': ['Make', [{ Ref: 'Group' }], { 'Fn::Split': [',', { Ref: 'Groups' }] }],
          },
          InstanceRole: { 'Fn::GetAtt': ['Profile', 'Arn'] },
          LaunchTemplate: { LaunchTemplateId: { 'Fn::ImportValue': 'lt-id' }, Version: '$Latest' },
          Tags: { stage: { 'Fn::Join': ['-', ['a', 'b']] }, other: { 'Fn::Select': [0, ['x']] } },
        }),
        Logs: { Type: 'AWS::Logs::LogGroup', Properties: { RetentionInDays: 30 }, DeletionPolicy: 'Retain' },
        Custom: { Type: 'Custom::Anything', Properties: { Whatever: [1, { a: 2 }] } },
      }),
    ).toEqual([]);
  });

  it('refuses an unknown resource type', () => {
    expect(check({ Bucket: { Type: 'AWS::S3::Bukket', Properties: {} } })).toEqual([
      { path: 'Bucket.Type', message: 'unknown resource type AWS::S3::Bukket' },
    ]);
  });

  it('refuses a misspelt property, nested ones included, naming the resource and the path', () => {
    const problems = check({
      Queue: queue({ Prority: 2 }),
      Env: environment({ InstanceType: ['g5.xlarge'] }),
    });
    expect(problems.map((p) => p.path)).toEqual([
      'Queue.Properties.Prority',
      'Env.Properties.ComputeResources.InstanceType',
    ]);
    expect(problems[0]!.message).toMatch(
      /^AWS::Batch::JobQueue has no property Prority \(it has: .*Priority/,
    );
    expect(problems[1]!.message).toMatch(
      /^ComputeResources has no property InstanceType \(it has: .*InstanceTypes/,
    );
  });

  it('refuses a resource without a required property', () => {
    const { Priority: _, ...noPriority } = queue({}).Properties;
    expect(check({ Queue: { Type: 'AWS::Batch::JobQueue', Properties: noPriority } })).toEqual([
      { path: 'Queue.Properties.Priority', message: 'AWS::Batch::JobQueue requires Priority' },
    ]);
  });

  it('refuses a scalar of the wrong type, a scalar for a list and a list for a map', () => {
    const problems = check({
      Queue: queue({ Priority: 'first' }),
      Env: environment({ InstanceTypes: 'g5.xlarge', Tags: ['stage'] }),
    });
    expect(problems).toEqual([
      { path: 'Queue.Properties.Priority', message: 'must be an integer, got "first"' },
      { path: 'Env.Properties.ComputeResources.InstanceTypes', message: 'must be a list, got "g5.xlarge"' },
      { path: 'Env.Properties.ComputeResources.Tags', message: 'must be a map, got ["stage"]' },
    ]);
  });

  it('refuses a value outside an enumeration the spec has', () => {
    expect(check({ Queue: queue({ State: 'ON' }) })).toEqual([
      { path: 'Queue.Properties.State', message: '"ON" is not one of "DISABLED", "ENABLED"' },
    ]);
  });

  it('checks both branches of Fn::If, and refuses keys that are not resource attributes', () => {
    expect(
      check({
        Queue: { ...queue({ State: { 'Fn::If': ['Off', 'DISABLED', 'OFF'] } }), Condtion: 'X' },
      }),
    ).toEqual([
      { path: 'Queue.Condtion', message: 'not a resource attribute' },
      { path: 'Queue.Properties.State.Fn::If[2]', message: '"OFF" is not one of "DISABLED", "ENABLED"' },
    ]);
  });
});
