/**
 * A raw Kafka-protocol client for tests: encodes requests and decodes responses with kafkajs's
 * own protocol modules (an independent implementation of the codec), and exposes the socket so
 * tests can send malformed bytes.
 */
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface KafkajsRequest {
  apiKey: number;
  apiVersion: number;
  encode: () => Promise<{ buffer: Buffer }>;
}
interface KafkajsApi {
  request: KafkajsRequest;
  response: { decode: (b: Buffer) => Promise<unknown>; parse: (d: unknown) => Promise<unknown> };
}
type ProtocolModule = { protocol: (o: { version: number }) => (args: Record<string, unknown>) => KafkajsApi };

const encodeFrame = require('kafkajs/src/protocol/request') as (o: { correlationId: number; clientId: string; request: KafkajsRequest }) => Promise<{ buffer: Buffer }>;

export function kafkajsApi(name: string, version: number, args: Record<string, unknown>): KafkajsApi {
  const mod = require(`kafkajs/src/protocol/requests/${name}`) as ProtocolModule;
  return mod.protocol({ version })(args);
}

export async function encodeRequest(api: KafkajsApi, correlationId: number): Promise<Buffer> {
  return (await encodeFrame({ correlationId, clientId: 'raw-test', request: api.request })).buffer;
}

/** A record batch (magic 2) as kafkajs's producer would send it. */
export async function makeBatch(
  messages: { key?: string | Buffer | null; value: string | Buffer; timestamp?: number }[],
  compression = 0,
  idempotence?: { producerId: number; producerEpoch: number; firstSequence: number },
): Promise<Buffer> {
  const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as {
    RecordBatch: (o: Record<string, unknown>) => Promise<{ buffer: Buffer }>;
  };
  const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (o: Record<string, unknown>) => unknown;
  const now = Date.now();
  const first = messages[0]?.timestamp ?? now;
  const max = Math.max(...messages.map((m) => m.timestamp ?? now));
  const records = messages.map((m, i) => Record({ key: m.key ?? null, value: m.value, offsetDelta: i, timestampDelta: (m.timestamp ?? now) - first }));
  const Long = require('kafkajs/src/utils/long') as { fromNumber: (n: number) => unknown };
  const batch = await RecordBatch({
    compression,
    records,
    firstTimestamp: first,
    maxTimestamp: max,
    lastOffsetDelta: records.length - 1,
    ...(idempotence ? { producerId: Long.fromNumber(idempotence.producerId), producerEpoch: idempotence.producerEpoch, firstSequence: idempotence.firstSequence } : {}),
  });
  return Buffer.from(batch.buffer);
}

/** Encodes a Produce v3+ request by hand (kafkajs builds its batch inside), with the given raw batch bytes. */
export function produceRequest(correlationId: number, version: number, acks: number, topic: string, partitions: { partition: number; records: Buffer | null }[]): Buffer {
  const parts: Buffer[] = [];
  const i16 = (v: number) => {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    parts.push(b);
  };
  const i32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    parts.push(b);
  };
  const str = (s: string | null) => {
    if (s === null) return i16(-1);
    i16(Buffer.byteLength(s));
    parts.push(Buffer.from(s));
  };
  i16(0);
  i16(version);
  i32(correlationId);
  str('raw-test');
  str(null); // transactional_id
  i16(acks);
  i32(30_000);
  i32(1);
  str(topic);
  i32(partitions.length);
  for (const p of partitions) {
    i32(p.partition);
    if (p.records === null) i32(-1);
    else {
      i32(p.records.length);
      parts.push(p.records);
    }
  }
  const body = Buffer.concat(parts);
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length);
  return Buffer.concat([size, body]);
}

export class RawConnection {
  private buf = Buffer.alloc(0);
  private waiters: ((b: Buffer | null) => void)[] = [];
  private frames: Buffer[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readInt32BE(0)) {
        const size = this.buf.readInt32BE(0);
        const frame = this.buf.subarray(4, 4 + size);
        this.buf = this.buf.subarray(4 + size);
        const w = this.waiters.shift();
        if (w) w(frame);
        else this.frames.push(frame);
      }
    });
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        for (const w of this.waiters.splice(0)) w(null);
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** Next response frame (correlation id first), or null when the broker closed the connection. */
  next(timeoutMs = 15_000): Promise<Buffer | null> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no response in time')), timeoutMs);
      this.waiters.push((b) => {
        clearTimeout(t);
        resolve(b);
      });
    });
  }

  /** Sends a kafkajs-encoded request and decodes the answer with kafkajs's decoder. */
  async call<T>(api: KafkajsApi, correlationId: number): Promise<T> {
    this.send(await encodeRequest(api, correlationId));
    const frame = await this.next();
    if (frame === null) throw new Error('connection closed by broker');
    if (frame.readInt32BE(0) !== correlationId) throw new Error(`correlation id ${frame.readInt32BE(0)} != ${correlationId}`);
    return (await api.response.decode(frame.subarray(4))) as T;
  }

  close(): void {
    this.socket.destroy();
  }
}
