/**
 * Response encoder. Writes primitives into a growing scratch buffer and keeps large byte
 * payloads (fetched record batches) by reference as separate chunks, so a fetch response is
 * sent as a list of buffers without copying the records.
 */
export class Writer {
  private chunks: Buffer[] = [];
  private buf: Buffer;
  private pos = 0;
  private total = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos > 0) this.flushScratch();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
  }
  private flushScratch(): void {
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.buf = this.buf.subarray(this.pos);
    if (this.buf.length < 64) this.buf = Buffer.allocUnsafe(1024);
    this.pos = 0;
  }

  /** Called once the response is written to the socket, or dropped unwritten (see afterSend). */
  readonly sentHooks: (() => void)[] = [];

  /**
   * Runs `fn` once the response's bytes have been handed to the kernel (or the response was
   * dropped without being written): the moment buffers passed to raw() may be reused.
   * Never called when the connection fails first; what the hooks would free is then left to the GC.
   */
  afterSend(fn: () => void): this {
    this.sentHooks.push(fn);
    return this;
  }

  get length(): number {
    return this.total;
  }

  int8(v: number): this {
    this.ensure(1);
    this.buf.writeInt8(v, this.pos);
    this.pos += 1;
    this.total += 1;
    return this;
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    this.total += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    this.total += 4;
    return this;
  }
  uint32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    this.total += 4;
    return this;
  }
  int64(v: number | bigint): this {
    this.ensure(8);
    this.buf.writeBigInt64BE(BigInt(v), this.pos);
    this.pos += 8;
    this.total += 8;
    return this;
  }
  uvarint(v: number): this {
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      this.total++;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
    this.total++;
    return this;
  }
  varint(v: number): this {
    return this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  string(s: string): this {
    const len = Buffer.byteLength(s);
    this.int16(len);
    this.ensure(len);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += len;
    this.total += len;
    return this;
  }
  nullableString(s: string | null | undefined): this {
    if (s === null || s === undefined) return this.int16(-1);
    return this.string(s);
  }
  compactString(s: string): this {
    const len = Buffer.byteLength(s);
    this.uvarint(len + 1);
    this.ensure(len);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += len;
    this.total += len;
    return this;
  }
  compactNullableString(s: string | null | undefined): this {
    if (s === null || s === undefined) return this.uvarint(0);
    return this.compactString(s);
  }
  /** Appends bytes by reference when large (no copy), by copy when small. */
  raw(b: Buffer): this {
    if (b.length >= 512) {
      if (this.pos > 0) this.flushScratch();
      this.chunks.push(b);
      this.total += b.length;
      return this;
    }
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    this.total += b.length;
    return this;
  }
  bytes(b: Buffer): this {
    this.int32(b.length);
    return this.raw(b);
  }
  nullableBytes(b: Buffer | null | undefined): this {
    if (b === null || b === undefined) return this.int32(-1);
    return this.bytes(b);
  }
  /** Records as several chunks sent back to back (one length prefix). */
  bytesChunks(parts: Buffer[] | null): this {
    if (parts === null) return this.int32(-1);
    let n = 0;
    for (const p of parts) n += p.length;
    this.int32(n);
    for (const p of parts) this.raw(p);
    return this;
  }
  array<T>(items: readonly T[], each: (w: Writer, item: T) => void): this {
    this.int32(items.length);
    for (const it of items) each(this, it);
    return this;
  }
  nullableArray<T>(items: readonly T[] | null | undefined, each: (w: Writer, item: T) => void): this {
    if (items === null || items === undefined) return this.int32(-1);
    return this.array(items, each);
  }
  compactArray<T>(items: readonly T[], each: (w: Writer, item: T) => void): this {
    this.uvarint(items.length + 1);
    for (const it of items) each(this, it);
    return this;
  }
  /** Empty tagged-field buffer. */
  tags(): this {
    return this.uvarint(0);
  }

  /** The encoded chunks; the writer must not be used afterwards. */
  finish(): Buffer[] {
    if (this.pos > 0) this.chunks.push(this.buf.subarray(0, this.pos));
    return this.chunks;
  }
}
