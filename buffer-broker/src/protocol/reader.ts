/**
 * Bounds-checked reader for Kafka's wire primitives (classic and KIP-482 compact forms).
 * Pure: no I/O. Any read past the end, negative length or absurd count throws
 * ProtocolDecodeError, which the server turns into a closed connection for that client only.
 */
export class ProtocolDecodeError extends Error {
  readonly code = 'PROTOCOL_DECODE';
}

/** Upper bound on array element counts, so a forged count cannot make us allocate wildly. */
const MAX_ARRAY = 1_000_000;

export class Reader {
  offset: number;
  constructor(
    readonly buf: Buffer,
    offset = 0,
    readonly end = buf.length,
  ) {
    this.offset = offset;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  private need(n: number): void {
    if (n < 0 || this.offset + n > this.end) {
      throw new ProtocolDecodeError(`need ${n} bytes at ${this.offset}, have ${this.end - this.offset}`);
    }
  }

  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.offset++);
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  /** INT64 as a JS number; Kafka offsets and timestamps stay well inside 2^53. */
  int64(): number {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return Number(v);
  }
  uvarint(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      this.need(1);
      const b = this.buf[this.offset++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
    throw new ProtocolDecodeError('varint too long');
  }
  varint(): number {
    const z = this.uvarint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
  uuid(): Buffer {
    return this.raw(16);
  }

  raw(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }

  string(): string {
    const s = this.nullableString();
    if (s === null) throw new ProtocolDecodeError('null where a string is required');
    return s;
  }
  nullableString(): string | null {
    const len = this.int16();
    if (len === -1) return null;
    if (len < -1) throw new ProtocolDecodeError(`bad string length ${len}`);
    return this.raw(len).toString('utf8');
  }
  compactString(): string {
    const s = this.compactNullableString();
    if (s === null) throw new ProtocolDecodeError('null where a compact string is required');
    return s;
  }
  compactNullableString(): string | null {
    const n = this.uvarint();
    if (n === 0) return null;
    return this.raw(n - 1).toString('utf8');
  }
  bytes(): Buffer {
    const b = this.nullableBytes();
    if (b === null) throw new ProtocolDecodeError('null where bytes are required');
    return b;
  }
  nullableBytes(): Buffer | null {
    const len = this.int32();
    if (len === -1) return null;
    if (len < -1) throw new ProtocolDecodeError(`bad bytes length ${len}`);
    return this.raw(len);
  }
  compactNullableBytes(): Buffer | null {
    const n = this.uvarint();
    if (n === 0) return null;
    return this.raw(n - 1);
  }

  private count(n: number): number {
    if (n > MAX_ARRAY || n > this.remaining) throw new ProtocolDecodeError(`array count ${n} exceeds frame`);
    return n;
  }
  array<T>(item: (r: Reader) => T): T[] {
    const a = this.nullableArray(item);
    if (a === null) throw new ProtocolDecodeError('null where an array is required');
    return a;
  }
  nullableArray<T>(item: (r: Reader) => T): T[] | null {
    const n = this.int32();
    if (n === -1) return null;
    if (n < -1) throw new ProtocolDecodeError(`bad array length ${n}`);
    const out: T[] = new Array(this.count(n));
    for (let i = 0; i < n; i++) out[i] = item(this);
    return out;
  }
  compactArray<T>(item: (r: Reader) => T): T[] {
    const a = this.compactNullableArray(item);
    if (a === null) throw new ProtocolDecodeError('null where a compact array is required');
    return a;
  }
  compactNullableArray<T>(item: (r: Reader) => T): T[] | null {
    const n = this.uvarint();
    if (n === 0) return null;
    const out: T[] = new Array(this.count(n - 1));
    for (let i = 0; i < n - 1; i++) out[i] = item(this);
    return out;
  }
  /** Skips a KIP-482 tagged-field buffer (we understand no tags yet). */
  taggedFields(): void {
    const n = this.count(this.uvarint());
    for (let i = 0; i < n; i++) {
      this.uvarint();
      this.raw(this.uvarint());
    }
  }
}
