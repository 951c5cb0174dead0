/**
 * The broker's HTTP listener: Prometheus `/metrics`, `/healthz`, and a small admin API for
 * consumer groups (list with lag, describe one, reset offsets). When an admin token is set, the
 * admin API requires `Authorization: Bearer <token>`.
 */
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ResetError, groupLag, listGroupSummaries, resetGroupOffsets, type ResetTarget } from '../admin/group-admin.ts';
import type { BrokerContext } from '../handlers/context.ts';

const resetBody = z.discriminatedUnion('to', [
  z.object({ to: z.literal('earliest'), topics: z.array(z.string()).optional() }),
  z.object({ to: z.literal('latest'), topics: z.array(z.string()).optional() }),
  z.object({ to: z.literal('timestamp'), timestamp: z.number().int().min(0), topics: z.array(z.string()).optional() }),
]);

const MAX_BODY = 64 * 1024;

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function error(res: http.ServerResponse, status: number, code: string, message: string, extra: Record<string, unknown> = {}): void {
  send(res, status, { error: { code, message, ...extra } });
}

function authorized(req: http.IncomingMessage, token: string): boolean {
  if (token === '') return true;
  const given = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${token}`);
  return given.length === want.length && timingSafeEqual(given, want);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      } else parts.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

async function route(ctx: BrokerContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://broker');
  const method = req.method ?? 'GET';
  if (method === 'GET' && url.pathname === '/metrics') {
    const body = await ctx.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': ctx.metrics.registry.contentType });
    res.end(body);
    return;
  }
  if (method === 'GET' && url.pathname === '/healthz') {
    return send(res, ctx.shuttingDown ? 503 : 200, { status: ctx.shuttingDown ? 'stopping' : 'ok', topics: ctx.logs.topics.size });
  }
  if (url.pathname.startsWith('/admin/')) {
    if (!authorized(req, ctx.config.adminToken)) return error(res, 401, 'UNAUTHORIZED', 'a valid admin bearer token is required');
    if (method === 'GET' && url.pathname === '/admin/groups') return send(res, 200, { groups: await listGroupSummaries(ctx) });
    const m = /^\/admin\/groups\/([^/]+)(\/reset-offsets)?$/.exec(url.pathname);
    if (m) {
      const groupId = decodeURIComponent(m[1]);
      if (method === 'GET' && !m[2]) {
        const [d] = ctx.groups.describeGroups([groupId]);
        if (d.groupState === 'Dead') return error(res, 404, 'UNKNOWN_GROUP', `no group ${groupId}`);
        return send(res, 200, { groupId, state: d.groupState, members: d.members.map((x) => ({ memberId: x.memberId, clientId: x.clientId, clientHost: x.clientHost })), partitions: await groupLag(ctx, groupId) });
      }
      if (method === 'POST' && m[2]) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(await readBody(req));
        } catch {
          return error(res, 400, 'MALFORMED_JSON', 'the body must be JSON');
        }
        const body = resetBody.safeParse(parsed);
        if (!body.success) return error(res, 400, 'VALIDATION_FAILED', 'expected {"to":"earliest"|"latest"} or {"to":"timestamp","timestamp":ms}', { fields: body.error.issues.map((i) => i.path.join('.') || 'body') });
        const target: ResetTarget = body.data.to === 'timestamp' ? { to: 'timestamp', timestamp: body.data.timestamp } : { to: body.data.to };
        try {
          return send(res, 200, { groupId, partitions: await resetGroupOffsets(ctx, groupId, target, body.data.topics) });
        } catch (err) {
          if (err instanceof ResetError) {
            const status = err.code === 'GROUP_HAS_MEMBERS' ? 409 : err.code === 'UNKNOWN_TOPIC' ? 404 : 500;
            return error(res, status, err.code, err.message);
          }
          throw err;
        }
      }
    }
  }
  error(res, 404, 'NOT_FOUND', 'no such endpoint');
}

export async function startHttp(ctx: BrokerContext, host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    route(ctx, req, res).catch((err: unknown) => {
      ctx.log.error({ err, url: req.url }, 'http request failed');
      if (!res.headersSent) error(res, 500, 'INTERNAL', 'internal error');
      else res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
