import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { InputError } from '../errors.ts';
import { SDK_RETRY, withRetryRule } from './sdk-retry.ts';

// A deployed stage: what `serverless deploy --stage NAME` created, found from the CloudFormation
// stack's outputs (stack `dogbreed-pipeline-<stage>`, the Serverless Framework's naming).

export interface DeployedStage {
  stage: string;
  region: string;
  stackName: string;
  bucket: string;
  stateMachineArn: string;
}

export const stackName = (stage: string) => `dogbreed-pipeline-${stage}`;

function output(outputs: { OutputKey?: string; OutputValue?: string }[], match: (key: string) => boolean) {
  return outputs.find((o) => o.OutputKey && match(o.OutputKey))?.OutputValue;
}

export async function resolveStage(
  stage: string,
  opts: { region?: string; client?: CloudFormationClient } = {},
): Promise<DeployedStage> {
  if (!/^[a-z0-9-]{1,32}$/.test(stage)) {
    throw new InputError(
      `--stage must be lower-case letters, digits and dashes (it is part of the bucket name), got "${stage}"`,
    );
  }
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const client = opts.client ?? withRetryRule(new CloudFormationClient({ region, ...SDK_RETRY }));
  const name = stackName(stage);
  let outputs: { OutputKey?: string; OutputValue?: string }[];
  try {
    const res = await client.send(new DescribeStacksCommand({ StackName: name }));
    outputs = res.Stacks?.[0]?.Outputs ?? [];
  } catch (err) {
    const e = err as { name?: string; message?: string };
    if (e.name === 'ValidationError' && /does not exist/.test(e.message ?? '')) {
      throw new InputError(
        `stage ${stage} is not deployed in ${region} (no stack ${name}): run \`npx serverless deploy --stage ${stage} --region ${region}\` first, or pass --region`,
      );
    }
    throw err;
  }
  const bucket = output(outputs, (k) => k === 'BucketName');
  const stateMachineArn = output(outputs, (k) => k.endsWith('StateMachineArn'));
  if (!bucket || !stateMachineArn) {
    throw new InputError(
      `stack ${name} has no ${bucket ? 'state machine ARN' : 'BucketName'} output: is it a dogbreed-pipeline deployment? Redeploy it with this version's serverless.yml`,
    );
  }
  return { stage, region, stackName: name, bucket, stateMachineArn };
}
