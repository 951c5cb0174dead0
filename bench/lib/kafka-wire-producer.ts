/**
 * A minimal Kafka producer speaking the wire protocol directly, for the end-to-end phases: the
 * counterpart of the raw-RESP XADD pipelines the bench uses for Redis (resp.ts). On this 2-core
 * machine the producer shares the cores with the server and the consumers, so a producer that
 * costs more per record than the system it feeds takes the consumers' CPU and measures itself.
 * kcat (librdkafka) spends ~0.9 us of CPU per 300-byte record (per-message allocation, locks,
 * thread wake-ups and delivery reports), 0.6-0.7 cores while it produces, against the broker's
 * 0.3; this producer writes the stamped records straight into a record batch (~0.2 us each).
 *
 * What it sends is what a Kafka producer sends: Produce v7 (the version kafkajs and librdkafka
 * use against this broker), acks=-1, one record batch v2 (magic 2, CRC-32C, no compression,
 * no producer id) per request. Like Kafka's sticky partitioner for keyless records, each send()
 * is one batch to one partition, the partitions taken in turn. Up to `maxInFlight` requests are
 * outstanding on the connection (5: the Java producer's max.in.flight.requests.per.connection);
 * send() resolves once its request is written and the window has room, finish() once every
 * request is acknowledged. Any error code in a response fails the run: nothing is retried, so
 * nothing can be duplicated, and the consumers' exactly-once check covers the rest.
 */
import net from 'node:net';
import { crc32c } from '@node-rs/crc32';
import { BenchError } from './procs.ts';
import { RECORD_BYTES, writeStampedRecord } from './records.ts';

const API_PRODUCE = 0;
const PRODUCE_VERSION = 7;
const CLIENT_ID = Buffer.from('spillway-bench-wire');
/** RecordBatch v2 header, up to and including the record count. */
const BATCH_HEADER = 61;
/** Where the CRC-32C'd part of a batch starts (the attributes). */
const CRC_FROM = 21;

function varintSize(zigzagged: number): number {
  let n = 1;
  while (zigzagged >= 0x80) {
    zigzagged = Math.floor(zigzagged / 128);
    n++;
  }
  return n;
}

/** Writes a zigzag-encoded varint of `v` (v >= -1 here) at `pos`; returns the position after it. */
function writeVarint(buf: Buffer, pos: number, v: number): number {
  let z = v >= 0 ? v * 2 : -v * 2 - 1;
  while (z >= 0x80) {
    buf[pos++] = (z & 0x7f) | 0x80;
    z = Math.floor(z / 128);
  }
  buf[pos++] = z;
  return pos;
}

/** Size of record `i` of a batch without its length prefix: attributes, timestamp delta 0, offset delta, null key, value, no headers. */
function recordBodySize(i: number): number {
  return 1 + 1 + varintSize(i * 2) + 1 + varintSize(RECORD_BYTES * 2) + RECORD_BYTES + 1;
}

/**
 * Encodes records [start, start + n), stamped `stampUs`, as one record batch v2 at `pos` of `buf`
 * (which must have room: batchBytes(n)); returns the batch's size.
 */
function encodeRecordBatch(buf: Buffer, pos: number, start: number, n: number, stampUs: number, timestampMs: number): number {
  let p = pos + BATCH_HEADER;
  for (let i = 0; i < n; i++) {
    p = writeVarint(buf, p, recordBodySize(i));
    buf[p++] = 0; // attributes
    buf[p++] = 0; // timestamp delta 0
    p = writeVarint(buf, p, i); // offset delta
    buf[p++] = 1; // key: null (zigzag -1)
    p = writeVarint(buf, p, RECORD_BYTES);
    writeStampedRecord(buf, p, start + i, stampUs);
    p += RECORD_BYTES;
    buf[p++] = 0; // no headers
  }
  const size = p - pos;
  buf.writeBigInt64BE(0n, pos); // base offset (the broker assigns)
  buf.writeInt32BE(size - 12, pos + 8); // batch length
  buf.writeInt32BE(-1, pos + 12); // partition leader epoch
  buf[pos + 16] = 2; // magic
  buf.writeInt16BE(0, pos + 21); // attributes: no compression, CreateTime
  buf.writeInt32BE(n - 1, pos + 23); // last offset delta
  buf.writeBigInt64BE(BigInt(timestampMs), pos + 27); // base timestamp
  buf.writeBigInt64BE(BigInt(timestampMs), pos + 35); // max timestamp
  buf.writeBigInt64BE(-1n, pos + 43); // producer id
  buf.writeInt16BE(-1, pos + 51); // producer epoch
  buf.writeInt32BE(-1, pos + 53); // base sequence
  buf.writeInt32BE(n, pos + 57); // records
  buf.writeUInt32BE(crc32c(buf.subarray(pos + CRC_FROM, p)), pos + 17);
  return size;
}

/** Bytes a batch of n records takes at most. */
function batchBytes(n: number): number {
  let size = BATCH_HEADER;
  for (let i = 0; i < n; i++) {
    const body = recordBodySize(i);
    size += varintSize(body * 2) + body;
  }
  return size;
}

interface Pending {
  correlationId: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class KafkaWireProducer {
  private readonly pending: Pending[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private correlationId = 1;
  private partition = 0;
  private carry: Buffer | null = null;
  private failure: Error | null = null;
  private readonly freeBuffers: Buffer[] = [];
  private readonly topicBytes: Buffer;
  /** A request's bytes before its record batch: size, header, and the one topic and partition. */
  private readonly requestHeaderBytes: number;

  private constructor(
    private readonly socket: net.Socket,
    topic: string,
    private readonly partitions: number,
    private readonly maxInFlight: number,
  ) {
    this.topicBytes = Buffer.from(topic);
    this.requestHeaderBytes = 4 + 2 + 2 + 4 + 2 + CLIENT_ID.length + 2 + 2 + 4 + 4 + 2 + this.topicBytes.length + 4 + 4 + 4;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new BenchError('WIRE_PRODUCE', `connection failed: ${err.message}`)));
    socket.on('close', () => this.fail(new BenchError('WIRE_PRODUCE', 'connection closed')));
  }

  static connect(o: { host: string; port: number; topic: string; partitions: number; maxInFlight?: number }): Promise<KafkaWireProducer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: o.host, port: o.port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new KafkaWireProducer(socket, o.topic, o.partitions, o.maxInFlight ?? 5));
      });
    });
  }

  /** Sends records [start, start + n) stamped `stampUs` as one batch to the next partition; resolves once the window has room. */
  async send(start: number, n: number, stampUs: number): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.inFlight.size >= this.maxInFlight) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const partition = this.partition;
    this.partition = (this.partition + 1) % this.partitions;
    const need = this.requestHeaderBytes + batchBytes(n);
    let buf = this.freeBuffers.pop();
    if (!buf || buf.length < need) buf = Buffer.allocUnsafe(Math.max(need, buf?.length ?? 0));
    const correlationId = this.correlationId++;
    let p = 4;
    p = buf.writeInt16BE(API_PRODUCE, p);
    p = buf.writeInt16BE(PRODUCE_VERSION, p);
    p = buf.writeInt32BE(correlationId, p);
    p = buf.writeInt16BE(CLIENT_ID.length, p);
    p += CLIENT_ID.copy(buf, p);
    p = buf.writeInt16BE(-1, p); // transactional id: null
    p = buf.writeInt16BE(-1, p); // acks: all
    p = buf.writeInt32BE(30_000, p); // timeout
    p = buf.writeInt32BE(1, p); // one topic
    p = buf.writeInt16BE(this.topicBytes.length, p);
    p += this.topicBytes.copy(buf, p);
    p = buf.writeInt32BE(1, p); // one partition
    p = buf.writeInt32BE(partition, p);
    const size = encodeRecordBatch(buf, p + 4, start, n, stampUs, Math.floor(stampUs / 1000));
    p = buf.writeInt32BE(size, p);
    p += size;
    buf.writeInt32BE(p - 4, 0);
    const frame = buf;
    const acked = new Promise<void>((resolve, reject) => this.pending.push({ correlationId, resolve, reject }));
    const tracked = acked.finally(() => this.inFlight.delete(tracked));
    tracked.catch(() => undefined); // surfaced through send() and finish()
    this.inFlight.add(tracked);
    this.socket.write(frame.subarray(0, p), () => this.freeBuffers.push(frame));
  }

  /** Resolves once every request sent is acknowledged. */
  async finish(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = null;
    while (buf.length >= 4) {
      const size = buf.readInt32BE(0);
      if (buf.length < 4 + size) break;
      this.onResponse(buf.subarray(4, 4 + size));
      buf = buf.subarray(4 + size);
    }
    if (buf.length > 0) this.carry = Buffer.from(buf);
  }

  /** Produce v7 response: correlation id, [topic [partition error base_offset log_append_time log_start_offset]] throttle. */
  private onResponse(r: Buffer): void {
    const correlationId = r.readInt32BE(0);
    const next = this.pending.shift();
    if (!next || next.correlationId !== correlationId) {
      this.fail(new BenchError('WIRE_PRODUCE', `response ${correlationId} does not answer request ${next?.correlationId ?? 'none'}`));
      return;
    }
    let p = 4;
    const topics = r.readInt32BE(p);
    p += 4;
    for (let t = 0; t < topics; t++) {
      p += 2 + r.readInt16BE(p);
      const partitions = r.readInt32BE(p);
      p += 4;
      for (let i = 0; i < partitions; i++) {
        const partition = r.readInt32BE(p);
        const errorCode = r.readInt16BE(p + 4);
        p += 4 + 2 + 8 + 8 + 8;
        if (errorCode !== 0) {
          const err = new BenchError('WIRE_PRODUCE', `partition ${partition}: Kafka error code ${errorCode}`);
          next.reject(err);
          this.fail(err);
          return;
        }
      }
    }
    next.resolve();
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}
