/**
 * Record batch v2 (magic 2) header: what the broker reads, validates and rewrites.
 * The broker never decompresses or re-encodes records; it rewrites baseOffset (bytes 0-7) and
 * partitionLeaderEpoch (12-15), both outside the CRC, and checks CRC-32C over [21, end).
 *
 *   RecordBatch => baseOffset INT64, batchLength INT32, partitionLeaderEpoch INT32, magic INT8,
 *     crc UINT32, attributes INT16, lastOffsetDelta INT32, baseTimestamp INT64, maxTimestamp INT64,
 *     producerId INT64, producerEpoch INT16, baseSequence INT32, recordsCount INT32, records
 */
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, type ErrorCodeValue } from './error-codes.ts';

export const BATCH_HEADER_SIZE = 61;
/** Bytes before batchLength counts: baseOffset + batchLength. */
export const LOG_OVERHEAD = 12;

export const Attr = {
  COMPRESSION_MASK: 0x07,
  TIMESTAMP_TYPE: 0x08,
  TRANSACTIONAL: 0x10,
  CONTROL: 0x20,
} as const;

export interface BatchHeader {
  baseOffset: number;
  batchLength: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordsCount: number;
}

/** Reads the header of the batch starting at `pos` (caller ensures 61 bytes are there). */
export function readBatchHeader(buf: Buffer, pos = 0): BatchHeader {
  return {
    baseOffset: Number(buf.readBigInt64BE(pos)),
    batchLength: buf.readInt32BE(pos + 8),
    magic: buf.readInt8(pos + 16),
    crc: buf.readUInt32BE(pos + 17),
    attributes: buf.readInt16BE(pos + 21),
    lastOffsetDelta: buf.readInt32BE(pos + 23),
    baseTimestamp: Number(buf.readBigInt64BE(pos + 27)),
    maxTimestamp: Number(buf.readBigInt64BE(pos + 35)),
    producerId: Number(buf.readBigInt64BE(pos + 43)),
    producerEpoch: buf.readInt16BE(pos + 51),
    baseSequence: buf.readInt32BE(pos + 53),
    recordsCount: buf.readInt32BE(pos + 57),
  };
}

export function batchCrcValid(buf: Buffer, pos: number, totalSize: number): boolean {
  return crc32c(buf.subarray(pos + 21, pos + totalSize)) === buf.readUInt32BE(pos + 17);
}

export interface ValidatedBatch {
  header: BatchHeader;
  /** The whole batch, exactly as received. */
  bytes: Buffer;
}

export type BatchValidation = { ok: true; batch: ValidatedBatch } | { ok: false; error: ErrorCodeValue; message: string };

/**
 * Validates the records field of one produce partition: exactly one v2 batch, consistent
 * lengths, a valid CRC, a known codec, not a control batch, and within `maxBytes`.
 */
export function validateProducedBatch(records: Buffer, maxBytes: number, produceVersion: number): BatchValidation {
  if (records.length > maxBytes) {
    return { ok: false, error: ErrorCode.MESSAGE_TOO_LARGE, message: `batch of ${records.length} bytes exceeds ${maxBytes}` };
  }
  if (records.length < BATCH_HEADER_SIZE) {
    return { ok: false, error: ErrorCode.CORRUPT_MESSAGE, message: 'records shorter than a batch header' };
  }
  const magic = records.readInt8(16);
  if (magic !== 2) {
    return { ok: false, error: ErrorCode.INVALID_RECORD, message: `unsupported magic ${magic}; only record batch v2` };
  }
  const batchLength = records.readInt32BE(8);
  if (batchLength + LOG_OVERHEAD !== records.length) {
    return {
      ok: false,
      error: batchLength + LOG_OVERHEAD < records.length ? ErrorCode.INVALID_RECORD : ErrorCode.CORRUPT_MESSAGE,
      message: 'exactly one record batch per partition is required and its length must match',
    };
  }
  if (!batchCrcValid(records, 0, records.length)) {
    return { ok: false, error: ErrorCode.CORRUPT_MESSAGE, message: 'CRC-32C mismatch' };
  }
  const header = readBatchHeader(records, 0);
  const codec = header.attributes & Attr.COMPRESSION_MASK;
  if (codec > 4) return { ok: false, error: ErrorCode.CORRUPT_MESSAGE, message: `unknown compression codec ${codec}` };
  if (codec === 4 && produceVersion < 7) {
    return { ok: false, error: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, message: 'zstd needs Produce v7' };
  }
  if (header.attributes & Attr.CONTROL) {
    return { ok: false, error: ErrorCode.INVALID_RECORD, message: 'clients may not send control batches' };
  }
  if (header.recordsCount <= 0 || header.lastOffsetDelta !== header.recordsCount - 1) {
    return { ok: false, error: ErrorCode.INVALID_RECORD, message: 'lastOffsetDelta must equal recordsCount - 1' };
  }
  return { ok: true, batch: { header, bytes: records } };
}

/** Zig-zag varlong (up to 10 bytes) as a JS number; returns [value, nextPos]. */
function readVarlong(buf: Buffer, pos: number): [number, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new RangeError('varlong past end');
    const b = buf[pos++];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      const v = (result >> 1n) ^ -(result & 1n);
      return [Number(v), pos];
    }
    shift += 7n;
  }
  throw new RangeError('varlong too long');
}

/**
 * The first record in a stored batch whose timestamp is >= `ts`, for ListOffsets by time.
 * Uncompressed and gzip batches are searched record by record; other codecs (snappy, lz4,
 * zstd: no decoder in the broker) answer with the batch's first offset, which is exact when
 * timestamps within a batch do not decrease.
 */
export function firstRecordAtOrAfter(batch: Buffer, ts: number, gunzip: (b: Buffer) => Buffer): { offset: number; timestamp: number } | null {
  const h = readBatchHeader(batch, 0);
  if (h.maxTimestamp < ts) return null;
  const codec = h.attributes & Attr.COMPRESSION_MASK;
  if (h.attributes & Attr.TIMESTAMP_TYPE) return { offset: h.baseOffset, timestamp: h.maxTimestamp };
  let records: Buffer;
  if (codec === 0) records = batch.subarray(BATCH_HEADER_SIZE);
  else if (codec === 1) records = gunzip(batch.subarray(BATCH_HEADER_SIZE));
  else return { offset: h.baseOffset, timestamp: h.maxTimestamp };
  let pos = 0;
  for (let i = 0; i < h.recordsCount && pos < records.length; i++) {
    const [len, p1] = readVarlong(records, pos);
    const next = p1 + len;
    const [tsDelta, p2] = readVarlong(records, p1 + 1); // skip attributes INT8
    const [offsetDelta] = readVarlong(records, p2);
    const t = h.baseTimestamp + tsDelta;
    if (t >= ts) return { offset: h.baseOffset + offsetDelta, timestamp: t };
    pos = next;
  }
  return { offset: h.baseOffset, timestamp: h.maxTimestamp };
}

/** Timestamp of the record at `offset` inside a stored batch (exact for uncompressed and gzip batches, else the batch's first timestamp). */
export function recordTimestampAt(batch: Buffer, offset: number, gunzip: (b: Buffer) => Buffer): number {
  const h = readBatchHeader(batch, 0);
  if (h.attributes & Attr.TIMESTAMP_TYPE) return h.maxTimestamp;
  const codec = h.attributes & Attr.COMPRESSION_MASK;
  if (codec > 1) return h.baseTimestamp;
  const records = codec === 0 ? batch.subarray(BATCH_HEADER_SIZE) : gunzip(batch.subarray(BATCH_HEADER_SIZE));
  let pos = 0;
  for (let i = 0; i < h.recordsCount && pos < records.length; i++) {
    const [len, p1] = readVarlong(records, pos);
    const [tsDelta, p2] = readVarlong(records, p1 + 1);
    const [offsetDelta] = readVarlong(records, p2);
    if (h.baseOffset + offsetDelta >= offset) return h.baseTimestamp + tsDelta;
    pos = p1 + len;
  }
  return h.baseTimestamp;
}
