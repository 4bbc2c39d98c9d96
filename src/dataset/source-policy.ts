import type { LookupAddress, LookupOneOptions } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, isIPv6, type LookupFunction } from 'node:net';
import { InputError } from '../errors.ts';

// Which dataset sources a caller may read. On a developer's machine anything goes: the files
// are the developer's own. Deployed, the fetch runs with the function's credentials: a path
// would read the function's own filesystem (/proc/self/environ holds its temporary keys) into
// the bucket, and a URL on a private address would reach what only the function can reach.

export interface SourcePolicy {
  /** file:// URLs and plain paths. */
  allowLocalPaths: boolean;
  /** http(s) hosts that resolve to loopback, link-local, private or otherwise internal addresses. */
  allowPrivateHosts: boolean;
  /** Host name (or IP literal) → its addresses; dns.lookup unless a test injects one. */
  lookup?: (host: string) => Promise<string[]>;
}

/** A developer's own machine: local files and local servers are fine. */
export const LOCAL_SOURCES: SourcePolicy = { allowLocalPaths: true, allowPrivateHosts: true };
/** A deployed function: only public http(s) hosts and s3:// objects. */
export const DEPLOYED_SOURCES: SourcePolicy = { allowLocalPaths: false, allowPrivateHosts: false };

// Two lists: BlockList matches IPv4 addresses against IPv4-mapped IPv6 subnets too.
const internal4 = new BlockList();
const internal6 = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local: instance metadata, the Lambda runtime's neighbours
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved and broadcast
] as const)
  internal4.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128],
  ['::ffff:0:0', 96], // IPv4-mapped in hex form; the dotted form is judged as IPv4 below
  ['64:ff9b::', 96], // NAT64 (embeds IPv4)
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const)
  internal6.addSubnet(net, prefix, 'ipv6');

/** Whether `address` is loopback, link-local, private or otherwise not a public internet address. */
export function isInternalAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return internal4.check(mapped[1]!, 'ipv4');
  return isIPv6(address) ? internal6.check(address, 'ipv6') : internal4.check(address, 'ipv4');
}

const defaultLookup = async (host: string): Promise<string[]> =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** Throws an InputError when `url`'s host is internal and the policy refuses internal hosts. */
export async function checkUrlHost(url: string, policy: SourcePolicy): Promise<void> {
  if (policy.allowPrivateHosts) return;
  const host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: string[];
  try {
    addresses = await (policy.lookup ?? defaultLookup)(host);
  } catch (err) {
    throw new InputError(`source ${url}: host ${host} does not resolve (${(err as Error).message})`);
  }
  const bad = addresses.find(isInternalAddress);
  if (bad !== undefined || addresses.length === 0) {
    throw new InputError(
      `source ${url}: host ${host} resolves to ${bad ?? 'no address'}, a loopback, link-local or private address, which a deployed stack does not fetch from; serve the dataset from a public https:// URL or upload it to s3://`,
    );
  }
}

/**
 * The DNS lookup a connection makes, held to the policy: the address checked is the address
 * connected to, so a host cannot resolve to a public address for checkUrlHost and to an
 * internal one a moment later (DNS rebinding).
 */
export function connectLookup(policy: SourcePolicy): LookupFunction {
  return (hostname, options, callback) => {
    (policy.lookup ?? defaultLookup)(hostname).then(
      (addresses) => {
        const bad = addresses.find(isInternalAddress);
        if (bad !== undefined || addresses.length === 0) {
          const err: NodeJS.ErrnoException = new InputError(
            `source host ${hostname} resolves to ${bad ?? 'no address'}, a loopback, link-local or private address, which a deployed stack does not fetch from`,
          );
          callback(err, '', 0);
          return;
        }
        const all = addresses.map((address): LookupAddress => ({ address, family: isIP(address) }));
        if ((options as LookupOneOptions & { all?: boolean }).all) callback(null, all);
        else callback(null, all[0]!.address, all[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}
