#!/usr/bin/env node
// S3 for the local stack: s3rver (buckets and objects on disk) on 127.0.0.1 and the services address, started detached by
// `codeb stack up`. Usage: node scripts/stack-s3rver.mjs --dir <data folder> --port <port>
// The access key and secret come from the environment (S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY) so
// they never show up in `ps`.
//
// Differences from MinIO, on purpose kept small: requests without credentials are refused (MinIO's
// buckets are private by default too) and unknown access keys are refused; s3rver does not check
// SigV4 signatures, so a wrong secret with the right access key is accepted. No bucket policies,
// lifecycle rules or per-project keys.
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');
const AWSAccount = require('s3rver/lib/models/account.js');

const { values } = parseArgs({ options: { dir: { type: 'string' }, port: { type: 'string' }, address: { type: 'string', multiple: true, default: ['127.0.0.1'] } } });
const accessKey = process.env.S3RVER_ACCESS_KEY;
const secretKey = process.env.S3RVER_SECRET_KEY;
if (!values.dir || !values.port || !accessKey || !secretKey) {
  console.error('usage: S3RVER_ACCESS_KEY=.. S3RVER_SECRET_KEY=.. node stack-s3rver.mjs --dir <folder> --port <port>');
  process.exit(2);
}
delete process.env.S3RVER_SECRET_KEY;

// Replace s3rver's built-in S3RVER/S3RVER key pair with ours.
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);

mkdirSync(values.dir, { recursive: true });
const s3 = new S3rver({ address: values.address[0], port: Number(values.port), directory: values.dir, silent: true });
s3.on('error', (err) => console.error(new Date().toISOString(), 's3rver error:', err?.message ?? err));
const handler = s3.callback();

const HEALTH = '/_codeb/health';
const signed = (req) => {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.length > 0) return true;
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  return q.has('X-Amz-Credential') || q.has('AWSAccessKeyId');
};

const onRequest = (req, res) => {
  if (req.method === 'GET' && req.url === HEALTH) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ service: 'codeb-s3rver', ok: true }));
    return;
  }
  if (!signed(req)) {
    res.writeHead(403, { 'content-type': 'application/xml' });
    res.end(
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Anonymous access is not allowed on the codeb local stack.</Message></Error>',
    );
    return;
  }
  handler(req, res);
};

// One server per address (loopback for codeb, the services address for containers), same handler.
const servers = values.address.map((address) => {
  const srv = createServer(onRequest);
  srv.on('error', (err) => {
    console.error(new Date().toISOString(), `cannot listen on ${address}:`, err.message);
    process.exit(1);
  });
  srv.listen(Number(values.port), address, () => {
    console.log(new Date().toISOString(), `s3rver listening on http://${address}:${values.port}, data in ${values.dir}`);
  });
  return srv;
});

const stop = (signal) => {
  console.log(new Date().toISOString(), `${signal}: shutting down`);
  let open = servers.length;
  for (const srv of servers) srv.close(() => --open === 0 && process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
