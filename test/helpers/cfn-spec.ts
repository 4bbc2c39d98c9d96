import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';
import type { Property, PropertyType, SpecDatabase } from '@aws-cdk/service-spec-types';

// Checks a CloudFormation template against AWS's machine-readable resource specification (the
// database the CDK is generated from, @aws-cdk/aws-service-spec): the resource type exists, every
// property (nested property types included) exists for it, required properties are there,
// scalars, lists and maps have the right shape, and values are among the allowed ones where the
// spec lists them. An intrinsic function is accepted wherever a value goes (its result is known
// only at deploy time); both branches of an Fn::If are checked.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface SpecProblem {
  /** Logical id, then the path: "TrainSpotComputeEnvironment.Properties.ComputeResources.InstanceType". */
  path: string;
  message: string;
}

/** Any parsed template: resources are plain JSON objects. */
interface TemplateLike {
  Resources?: Record<string, unknown>;
}

/** Loads the spec database (a gzipped JSON of some 1,800 resource types; seconds to load). */
export function loadSpec(): Promise<SpecDatabase> {
  return loadAwsServiceSpec();
}

const INTRINSICS = new Set([
  'Ref',
  'Condition',
  'Fn::Base64',
  'Fn::Cidr',
  'Fn::FindInMap',
  'Fn::GetAtt',
  'Fn::GetAZs',
  'Fn::If',
  'Fn::ImportValue',
  'Fn::Join',
  'Fn::Length',
  'Fn::Select',
  'Fn::Split',
  'Fn::Sub',
  'Fn::ToJsonString',
  'Fn::Transform',
  'Fn::And',
  'Fn::Equals',
  'Fn::Not',
  'Fn::Or',
]);

const RESOURCE_KEYS = new Set([
  'Type',
  'Properties',
  'DependsOn',
  'Condition',
  'DeletionPolicy',
  'UpdateReplacePolicy',
  'UpdatePolicy',
  'CreationPolicy',
  'Metadata',
]);

const isObject = (v: Json | undefined): v is { [key: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The intrinsic function a value is, if it is one: an object with one Ref / Fn::… key. */
function intrinsic(v: Json): string | undefined {
  if (!isObject(v)) return undefined;
  const keys = Object.keys(v);
  return keys.length === 1 && INTRINSICS.has(keys[0]!) ? keys[0] : undefined;
}

const show = (v: Json) => {
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

export class SpecChecker {
  constructor(private readonly db: SpecDatabase) {}

  /** Every problem of every resource; empty when the template conforms. */
  check(template: TemplateLike): SpecProblem[] {
    return Object.entries(template.Resources ?? {}).flatMap(([id, resource]) =>
      this.checkResource(id, resource as Json),
    );
  }

  private checkResource(id: string, resource: Json): SpecProblem[] {
    if (!isObject(resource)) return [{ path: id, message: 'a resource must be an object' }];
    const problems: SpecProblem[] = [];
    for (const key of Object.keys(resource)) {
      if (!RESOURCE_KEYS.has(key))
        problems.push({ path: `${id}.${key}`, message: 'not a resource attribute' });
    }
    const type = resource.Type;
    if (typeof type !== 'string')
      return [...problems, { path: `${id}.Type`, message: 'missing resource type' }];
    // Custom resources take any properties their provider understands.
    if (type.startsWith('Custom::') || type === 'AWS::CloudFormation::CustomResource') return problems;
    const [spec] = this.db.lookup('resource', 'cloudFormationType', 'equals', type);
    if (!spec) return [...problems, { path: `${id}.Type`, message: `unknown resource type ${type}` }];
    const props = resource.Properties ?? {};
    problems.push(...this.checkObject(`${id}.Properties`, props, spec.properties, type));
    return problems;
  }

  /** An object against a set of property definitions (a resource's or a property type's). */
  private checkObject(
    path: string,
    value: Json,
    properties: Record<string, Property>,
    typeName: string,
  ): SpecProblem[] {
    if (intrinsic(value))
      return this.checkIntrinsic(path, value, (p, v) => this.checkObject(p, v, properties, typeName));
    if (!isObject(value)) return [{ path, message: `${typeName} must be an object, got ${show(value)}` }];
    const problems: SpecProblem[] = [];
    for (const [name, v] of Object.entries(value)) {
      const prop = properties[name];
      if (!prop) {
        problems.push({
          path: `${path}.${name}`,
          message: `${typeName} has no property ${name} (it has: ${Object.keys(properties).sort().join(', ')})`,
        });
        continue;
      }
      problems.push(...this.checkAnyType(`${path}.${name}`, v, [prop.type, ...(prop.previousTypes ?? [])]));
    }
    for (const [name, prop] of Object.entries(properties)) {
      if (prop.required && !(name in value)) {
        problems.push({ path: `${path}.${name}`, message: `${typeName} requires ${name}` });
      }
    }
    return problems;
  }

  /** A value that may have any of several types (the current one, or one it had before). */
  private checkAnyType(path: string, value: Json, types: PropertyType[]): SpecProblem[] {
    let first: SpecProblem[] | undefined;
    for (const t of types) {
      const problems = this.checkType(path, value, t);
      if (problems.length === 0) return [];
      first ??= problems;
    }
    return first ?? [];
  }

  /** Fn::If: both branches (AWS::NoValue aside) are values of the type; other intrinsics pass. */
  private checkIntrinsic(
    path: string,
    value: Json,
    check: (path: string, value: Json) => SpecProblem[],
  ): SpecProblem[] {
    if (!isObject(value) || !('Fn::If' in value)) return [];
    const args = value['Fn::If'];
    if (!Array.isArray(args) || args.length !== 3 || typeof args[0] !== 'string') {
      return [{ path, message: 'Fn::If takes [condition name, value if true, value if false]' }];
    }
    return [1, 2].flatMap((i) => {
      const branch = args[i]!;
      if (isObject(branch) && branch.Ref === 'AWS::NoValue') return [];
      return check(`${path}.Fn::If[${i}]`, branch);
    });
  }

  private checkType(path: string, value: Json, type: PropertyType): SpecProblem[] {
    if (intrinsic(value)) return this.checkIntrinsic(path, value, (p, v) => this.checkType(p, v, type));
    const wrong = (what: string) => [{ path, message: `must be ${what}, got ${show(value)}` }];
    switch (type.type) {
      case 'string': {
        // CloudFormation turns numbers and booleans given for strings into their text.
        if (!['string', 'number', 'boolean'].includes(typeof value)) return wrong('a string');
        return this.checkAllowed(path, String(value), type.allowedValues);
      }
      case 'number':
        return Number.isFinite(Number(value)) &&
          value !== '' &&
          typeof value !== 'boolean' &&
          !isObject(value)
          ? []
          : wrong('a number');
      case 'integer': {
        if (
          !Number.isInteger(Number(value)) ||
          value === '' ||
          typeof value === 'boolean' ||
          isObject(value)
        ) {
          return wrong('an integer');
        }
        return this.checkAllowed(path, Number(value), type.allowedValues);
      }
      case 'boolean':
        return typeof value === 'boolean' || value === 'true' || value === 'false' ? [] : wrong('a boolean');
      case 'date-time':
        return typeof value === 'string' ? [] : wrong('a date-time string');
      case 'json':
        return value === null ? wrong('a JSON object') : [];
      case 'null':
        return value === null ? [] : wrong('null');
      case 'tag':
        return this.checkObject(
          path,
          value,
          {
            Key: { type: { type: 'string' }, required: true },
            Value: { type: { type: 'string' }, required: true },
          },
          'Tag',
        );
      case 'array':
        if (!Array.isArray(value)) return wrong('a list');
        return value.flatMap((v, i) => this.checkType(`${path}[${i}]`, v, type.element));
      case 'map':
        if (!isObject(value)) return wrong('a map');
        return Object.entries(value).flatMap(([k, v]) => this.checkType(`${path}.${k}`, v, type.element));
      case 'union':
        return this.checkAnyType(path, value, type.types);
      case 'ref': {
        const def = this.db.get('typeDefinition', type.reference);
        return this.checkObject(path, value, def.properties, def.name);
      }
    }
  }

  private checkAllowed<T extends string | number>(path: string, value: T, allowed?: T[]): SpecProblem[] {
    if (!allowed || allowed.includes(value)) return [];
    return [
      {
        path,
        message: `${JSON.stringify(value)} is not one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
      },
    ];
  }
}

/** One line per problem, for an assertion message. */
export const formatProblems = (problems: SpecProblem[]) =>
  problems.map((p) => `${p.path}: ${p.message}`).join('\n');
