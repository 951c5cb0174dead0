import crypto from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { readIntoUserBuffer, type UserRead } from '../../src/server/user-read.ts';

interface Accepted {
  socket: net.Socket;
  read: UserRead | null;
  received: Buffer[];
  reads: number;
  /** The callback's answer for the next reads (false = stop reading). */
  keepReading: boolean;
  ended: Promise<void>;
}

const servers: net.Server[] = [];
const clients: net.Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

/** A server whose accepted socket reads into a 4 KiB user buffer; the client connected to it. */
async function pair(): Promise<{ accepted: Accepted; client: net.Socket }> {
  let resolveAccepted!: (a: Accepted) => void;
  const acceptedP = new Promise<Accepted>((r) => (resolveAccepted = r));
  const server = net.createServer((socket) => {
    const a: Accepted = { socket, read: null, received: [], reads: 0, keepReading: true, ended: new Promise((r) => socket.once('close', () => r())) };
    a.read = readIntoUserBuffer(socket, Buffer.alloc(4096), (n, buf) => {
      a.reads++;
      a.received.push(Buffer.from(buf.subarray(0, n)));
      return a.keepReading;
    });
    resolveAccepted(a);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  clients.push(client);
  await new Promise<void>((r) => client.once('connect', () => r()));
  return { accepted: await acceptedP, client };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await settle(5);
  }
}

describe('readIntoUserBuffer (server sockets read into one reused buffer)', () => {
  it('delivers every byte, in order, through the one buffer', async () => {
    const { accepted, client } = await pair();
    expect(accepted.read).not.toBeNull();
    const data = crypto.randomBytes(2 * 1024 * 1024);
    for (let at = 0; at < data.length; ) {
      const n = Math.min(data.length - at, 1 + crypto.randomInt(100_000));
      client.write(data.subarray(at, at + n));
      at += n;
    }
    await until(() => accepted.received.reduce((t, b) => t + b.length, 0) >= data.length);
    expect(Buffer.concat(accepted.received).equals(data)).toBe(true);
    // 4 KiB at most per read: the same buffer was reused hundreds of times.
    expect(accepted.reads).toBeGreaterThanOrEqual(data.length / 4096);
  });

  it('stops reading when the callback returns false, and resume() reads the rest', async () => {
    const { accepted, client } = await pair();
    accepted.keepReading = false;
    client.write(Buffer.alloc(1000, 1));
    await until(() => accepted.reads === 1);
    client.write(Buffer.alloc(200_000, 2));
    await settle(200);
    expect(accepted.reads).toBe(1);
    accepted.keepReading = true;
    accepted.read?.resume();
    await until(() => accepted.received.reduce((t, b) => t + b.length, 0) === 201_000);
    const all = Buffer.concat(accepted.received);
    expect(all.subarray(0, 1000).every((b) => b === 1)).toBe(true);
    expect(all.subarray(1000).every((b) => b === 2)).toBe(true);
    accepted.read?.resume(); // resuming a socket that reads is harmless
  });

  it('the socket still ends and closes when the client closes', async () => {
    const { accepted, client } = await pair();
    client.end(Buffer.from('last words'));
    await accepted.ended;
    expect(Buffer.concat(accepted.received).toString()).toBe('last words');
  });

  it('returns null for a socket without a handle (callers fall back to data events)', () => {
    expect(readIntoUserBuffer(new net.Socket(), Buffer.alloc(16), () => true)).toBeNull();
  });
});
