/**
 * Slow and greedy clients against a real gateway process, over raw sockets: trickled headers
 * and bodies are cut off with 408, idle and long-lived keep-alive connections are closed,
 * connections beyond the cap are refused while existing ones are still served, and what node's
 * HTTP parser refuses itself still gets the JSON error shape. No timing assertions: each bound
 * is a generous waitFor, and "cut off" means the server closed a connection we kept feeding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrokerProcess, startGatewayProcess, startRedis, waitFor, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { parseAnswers, RawSocket } from './support/raw-socket.ts';

let redisProc: RedisProcess;
let broker: BrokerProcess;
/** Short timeouts, 3 requests per connection. */
let gw: GatewayProcess;
/** At most 3 connections. */
let gwCap: GatewayProcess;
const sockets: RawSocket[] = [];

beforeAll(async () => {
  [redisProc, broker] = await Promise.all([startRedis(), startBrokerProcess()]);
  const base = { redisUrl: redisProc.url, kafkaBrokers: broker.bootstrap };
  gw = await startGatewayProcess({
    ...base,
    args: ['--rate-limit', '0', '--headers-timeout-ms', '1000', '--request-timeout-ms', '2000', '--keep-alive-timeout-ms', '1000', '--max-requests-per-socket', '3'],
  });
  gwCap = await startGatewayProcess({ ...base, args: ['--rate-limit', '0', '--max-connections', '3', '--keep-alive-timeout-ms', '60000'] });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all([gw?.kill('SIGKILL'), gwCap?.kill('SIGKILL')]);
  await broker?.kill('SIGKILL');
  await redisProc?.stop();
});

async function connect(port: number): Promise<RawSocket> {
  const s = await RawSocket.connect(port);
  sockets.push(s);
  return s;
}

const health = 'GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n';

function expectJsonError(body: string, code: string): void {
  const parsed = JSON.parse(body) as { error: { code: string; message: string } };
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(parsed.error.code).toBe(code);
  expect(typeof parsed.error.message).toBe('string');
}

describe('slow clients', () => {
  it('cuts off a client trickling its headers (slowloris) with 408 REQUEST_TIMEOUT and closes the connection', async () => {
    const s = await connect(gw.port);
    s.write('GET /healthz HTTP/1.1\r\nHost: gw\r\n');
    s.trickle('X-Slow: 1\r\n', 100);
    await s.waitClosed();
    const [answer] = parseAnswers(s.text());
    expect(answer.status).toBe(408);
    expect(answer.headers.connection).toBe('close');
    expectJsonError(answer.body, 'REQUEST_TIMEOUT');
    expect(gw.proc.exitCode).toBeNull();
  });

  it('cuts off a client trickling its body with 408 (or a close) and answers others meanwhile', async () => {
    const s = await connect(gw.port);
    s.write('POST /v1/orders HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"sku":"');
    s.trickle('a', 100);
    // Another client is served while the slow one holds its connection.
    const other = await connect(gw.port);
    other.write(health);
    expect((await other.answers(1))[0].status).toBe(200);
    await s.waitClosed();
    const answers = parseAnswers(s.text());
    expect(answers.length).toBeLessThanOrEqual(1);
    if (answers.length === 1) {
      expect(answers[0].status).toBe(408);
      expectJsonError(answers[0].body, 'REQUEST_TIMEOUT');
    }
    expect(gw.proc.exitCode).toBeNull();
  });
});

describe('keep-alive', () => {
  it('closes a connection after --max-requests-per-socket answers, saying so in the last one', async () => {
    const s = await connect(gw.port);
    for (let i = 1; i <= 3; i++) {
      s.write(health);
      const answers = await s.answers(i);
      expect(answers[i - 1].status).toBe(200);
      expect(answers[i - 1].headers.connection).toBe(i < 3 ? 'keep-alive' : 'close');
    }
    await s.waitClosed();
  });

  it('closes an idle keep-alive connection after --keep-alive-timeout-ms', async () => {
    const s = await connect(gw.port);
    s.write(health);
    const [answer] = await s.answers(1);
    expect(answer.headers.connection).toBe('keep-alive');
    await s.waitClosed();
  });
});

describe('connection cap', () => {
  it('refuses connections beyond --max-connections while serving the open ones, and accepts again once one closes', async () => {
    const open: RawSocket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await connect(gwCap.port);
      s.write(health);
      expect((await s.answers(1))[0].status).toBe(200);
      open.push(s);
    }
    const refused = await connect(gwCap.port);
    refused.write(health);
    await refused.waitClosed();
    expect(refused.text()).toBe('');

    // The open connections are still served.
    open[0].write(health);
    expect((await open[0].answers(2))[1].status).toBe(200);

    open[2].destroy();
    const again = await waitFor(
      async () => {
        const s = await connect(gwCap.port);
        s.write(health);
        await waitFor(() => s.closed || parseAnswers(s.text()).length > 0, { timeoutMs: 10_000 });
        return parseAnswers(s.text())[0]?.status === 200 ? s : null;
      },
      { what: 'a connection to be accepted once one closed', timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(again.closed).toBe(false);
    expect(gwCap.proc.exitCode).toBeNull();
  });
});

describe("node:http's own refusals", () => {
  it('answer with the JSON error shape: oversized headers 431, a malformed request 400, CONNECT 405', async () => {
    const huge = await connect(gw.port);
    huge.write(`GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Huge: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    await huge.waitClosed();
    const [tooLarge] = parseAnswers(huge.text());
    expect(tooLarge.status).toBe(431);
    expectJsonError(tooLarge.body, 'HEADERS_TOO_LARGE');

    const longPath = await connect(gw.port);
    longPath.write(`GET /${'x'.repeat(64 * 1024)} HTTP/1.1\r\nHost: gw\r\n\r\n`);
    await longPath.waitClosed();
    expect(parseAnswers(longPath.text())[0].status).toBe(431);

    for (const garbage of ['NOPE / HTTP/1.1\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', '\x00\x01\x02\r\n\r\n', 'POST /v1/orders HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'GET /\x7f HTTP/1.1\r\n\r\n']) {
      const s = await connect(gw.port);
      s.write(garbage);
      await s.waitClosed();
      const [answer] = parseAnswers(s.text());
      expect(answer?.status, JSON.stringify(garbage)).toBe(400);
      expectJsonError(answer.body, 'BAD_REQUEST');
    }

    const connectReq = await connect(gw.port);
    connectReq.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    await connectReq.waitClosed();
    const [notAllowed] = parseAnswers(connectReq.text());
    expect(notAllowed.status).toBe(405);
    expectJsonError(notAllowed.body, 'METHOD_NOT_ALLOWED');

    const after = await connect(gw.port);
    after.write(health);
    expect((await after.answers(1))[0].status).toBe(200);
  });
});
