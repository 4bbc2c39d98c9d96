import { startLocalS3 } from '../src/local/s3-server.ts';

// Child process of the features benchmark: the local S3 server (s3rver) in a process of its own,
// as in a local run, where the CLI process serves S3 and the training job is a child reading from
// it. `s3-server-child.ts <directory> <bucket>` prints the endpoint as one line, serves until its
// stdin ends, then stops.

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) throw new Error('usage: s3-server-child.ts <directory> <bucket>');
const s3 = await startLocalS3({ directory, bucket });
process.stdout.write(`${s3.endpoint}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void s3.close().then(() => process.exit(0));
});
