/**
 * A TCP proxy that can lose a response: it forwards Kafka frames both ways, and when told to,
 * closes the client connection instead of delivering the answer to the next Produce request —
 * after the broker has appended it. That is the lost-acknowledgement case idempotence exists for.
 */
import net from 'node:net';

export interface DropProxy {
  port: number;
  /** Lose the response to the next `n` Produce requests. */
  dropNextProduceResponses(n: number): void;
  dropped: number;
  close(): Promise<void>;
}

function frames(onFrame: (f: Buffer) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      const size = buf.readInt32BE(0);
      onFrame(buf.subarray(0, 4 + size));
      buf = buf.subarray(4 + size);
    }
  };
}

export async function startDropProxy(targetPort: number, listenPort = 0): Promise<DropProxy> {
  let toDrop = 0;
  const sockets = new Set<net.Socket>();
  const state = { dropped: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const doomed = new Set<number>();
    client.on(
      'data',
      frames((f) => {
        const apiKey = f.readInt16BE(4);
        const correlationId = f.readInt32BE(8);
        if (apiKey === 0 && toDrop > 0) {
          toDrop--;
          doomed.add(correlationId);
        }
        upstream.write(f);
      }),
    );
    upstream.on(
      'data',
      frames((f) => {
        if (doomed.has(f.readInt32BE(4))) {
          state.dropped++;
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(f);
      }),
    );
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    dropNextProduceResponses(n) {
      toDrop = n;
    },
    get dropped() {
      return state.dropped;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
