/**
 * Entry of a reference server process (forked by bench/gateway.ts), measured the same way as the
 * gateway: `bare` is node:http that reads and JSON.parses the order body and answers 202 with the
 * gateway's headers (content-type, content-length) and a body of the gateway's size and shape;
 * `express` is an express 5 app with its defaults (express.json(), res.status(202).json()), i.e.
 * what a straightforward express order endpoint costs before doing any work. Both use the
 * gateway's server timeouts. Reports its port over IPC; exits with its parent.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { FromReference, ReferenceKind } from './protocol.ts';

const SERVER_OPTIONS = { keepAliveTimeout: 5000, headersTimeout: 10_000, requestTimeout: 30_000 } as const;
/** The gateway's 202 body, byte for byte the same size and shape (a fresh orderId per answer would
 * be work the gateway does, not HTTP work; the bytes on the wire are what the references share). */
const ACCEPTED_BODY = { orderId: '00000000-0000-4000-8000-000000000000', status: 'accepted', partition: 0, offset: 0, estimatedDeliverySeconds: 0 };
const ACCEPTED = JSON.stringify(ACCEPTED_BODY);

function bare(): http.Server {
  return http.createServer(SERVER_OPTIONS, (req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/orders') {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let order: unknown;
      try {
        order = JSON.parse((chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8'));
      } catch {
        order = undefined;
      }
      if (typeof order !== 'object' || order === null) {
        res.writeHead(400, { 'content-length': 0 });
        res.end();
        return;
      }
      res.writeHead(202, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(ACCEPTED) });
      res.end(ACCEPTED);
    });
  });
}

function expressDefaults(): http.Server {
  const app = express();
  app.use(express.json());
  app.post('/v1/orders', (req, res) => {
    if (typeof req.body !== 'object' || req.body === null) {
      res.status(400).end();
      return;
    }
    res.status(202).json(ACCEPTED_BODY);
  });
  return http.createServer(SERVER_OPTIONS, app);
}

const kind = process.argv[2] as ReferenceKind;
if (kind !== 'bare' && kind !== 'express') {
  process.stderr.write(`usage: ref-server.ts bare|express (got ${String(kind)})\n`);
  process.exit(2);
}
const server = kind === 'bare' ? bare() : expressDefaults();
process.on('disconnect', () => process.exit(0));
server.listen(0, '127.0.0.1', () => {
  const m: FromReference = { type: 'listening', port: (server.address() as AddressInfo).port };
  process.send?.(m);
});
