/**
 * The benchmark's records: fixed-size printable payloads whose first bytes carry the record's
 * index, so read-back can prove every record came back exactly once (not merely "N lines").
 *
 * Layout (RECORD_BYTES = 300): `r` + 10-digit zero-padded index + `-` + filler letters. No
 * newline inside, so the same bytes serve as kcat input lines, kafkajs values and Redis fields.
 */
import fs from 'node:fs';

export const RECORD_BYTES = 300;
const INDEX_AT = 1;
const INDEX_DIGITS = 10;
const TEMPLATE = Buffer.alloc(RECORD_BYTES);
{
  TEMPLATE.write('r0000000000-', 0, 'latin1');
  for (let i = INDEX_AT + INDEX_DIGITS + 1; i < RECORD_BYTES; i++) TEMPLATE[i] = 0x61 + (i % 26);
}

/** Writes record `index` into `target` at `offset` (RECORD_BYTES bytes). */
export function writeRecord(target: Buffer, offset: number, index: number): void {
  TEMPLATE.copy(target, offset);
  let n = index;
  for (let d = INDEX_AT + INDEX_DIGITS - 1; d >= INDEX_AT; d--) {
    const c = n % 10;
    target[offset + d] = 0x30 + c;
    n = (n - c) / 10;
  }
}

export function recordPayload(index: number): Buffer {
  const b = Buffer.allocUnsafe(RECORD_BYTES);
  writeRecord(b, 0, index);
  return b;
}

/** Reads the index back out of a payload; -1 if it is not one of ours. */
export function recordIndex(buf: Buffer, offset: number): number {
  if (buf[offset] !== 0x72) return -1; // 'r'
  let n = 0;
  for (let d = INDEX_AT; d < INDEX_AT + INDEX_DIGITS; d++) {
    const c = buf[offset + d] - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** Writes `count` records as newline-terminated lines (kcat -P input), 10,000 per write. */
export function writeLinesFile(file: string, count: number): void {
  const perChunk = 10_000;
  const line = RECORD_BYTES + 1;
  const fd = fs.openSync(file, 'w');
  try {
    const chunk = Buffer.allocUnsafe(perChunk * line);
    for (let start = 0; start < count; start += perChunk) {
      const n = Math.min(perChunk, count - start);
      for (let i = 0; i < n; i++) {
        writeRecord(chunk, i * line, start + i);
        chunk[i * line + RECORD_BYTES] = 0x0a;
      }
      fs.writeSync(fd, chunk, 0, n * line);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Tracks which record indices were read back. Duplicates and foreign or mis-sized records are
 * counted, not thrown, so a run reports every kind of damage at once.
 */
export class ReadBackCheck {
  /** seen[i] = 1 once record i was read (shared with group workers through packSeen). */
  readonly seen: Uint8Array;
  records = 0;
  duplicates = 0;
  foreign = 0;
  wrongSize = 0;

  constructor(readonly expected: number) {
    this.seen = new Uint8Array(expected);
  }

  add(buf: Buffer, offset: number, length: number): void {
    this.addIndex(recordIndex(buf, offset), length);
  }

  /** The same as add(), for a record whose index was already read (recordIndex; -1 if foreign). */
  addIndex(i: number, length: number): void {
    this.records++;
    if (length !== RECORD_BYTES) this.wrongSize++;
    if (i < 0 || i >= this.expected) {
      this.foreign++;
      return;
    }
    if (this.seen[i] === 1) this.duplicates++;
    else this.seen[i] = 1;
  }

  missing(): number {
    let n = 0;
    for (let i = 0; i < this.expected; i++) if (this.seen[i] === 0) n++;
    return n;
  }

  summary(): ReadBackSummary {
    const missing = this.missing();
    return {
      records: this.records,
      missing,
      duplicates: this.duplicates,
      foreign: this.foreign,
      wrongSize: this.wrongSize,
      ok: missing === 0 && this.duplicates === 0 && this.foreign === 0 && this.wrongSize === 0 && this.records === this.expected,
    };
  }
}

export interface ReadBackSummary {
  records: number;
  missing: number;
  duplicates: number;
  foreign: number;
  wrongSize: number;
  ok: boolean;
}

/**
 * Stamped records (end-to-end phases): the same layout with the send time in microseconds of
 * wall-clock time (16 digits) right after the index: `r` + index + `-` + stamp + `-` + filler.
 * The stamp is comparable across processes on this machine (performance.timeOrigin is derived
 * from the system clock), so a consumer in another process can compute produce-to-consume latency.
 */
const STAMP_AT = INDEX_AT + INDEX_DIGITS + 1;
const STAMP_DIGITS = 16;

/** Wall-clock time in microseconds, with performance.now()'s resolution. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** The digits of the last stamp written: a chunk's records share one stamp, so it is formatted once. */
const stampDigits = Buffer.alloc(STAMP_DIGITS);
let stampOfDigits = -1;

export function writeStampedRecord(target: Buffer, offset: number, index: number, stampUs: number): void {
  writeRecord(target, offset, index);
  if (stampUs !== stampOfDigits) {
    let n = stampUs;
    for (let d = STAMP_DIGITS - 1; d >= 0; d--) {
      const c = n % 10;
      stampDigits[d] = 0x30 + c;
      n = (n - c) / 10;
    }
    stampOfDigits = stampUs;
  }
  for (let d = 0; d < STAMP_DIGITS; d++) target[offset + STAMP_AT + d] = stampDigits[d];
  target[offset + STAMP_AT + STAMP_DIGITS] = 0x2d; // '-'
}

export function stampedPayload(index: number, stampUs: number): Buffer {
  const b = Buffer.allocUnsafe(RECORD_BYTES);
  writeStampedRecord(b, 0, index, stampUs);
  return b;
}

/** The send stamp of a stamped record (µs), or -1 if it has none. */
export function recordStampUs(buf: Buffer, offset: number): number {
  let n = 0;
  for (let d = STAMP_AT; d < STAMP_AT + STAMP_DIGITS; d++) {
    const c = buf[offset + d] - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}
