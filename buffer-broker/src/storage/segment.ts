/**
 * A segment: one `.log` file of record batches stored exactly as received (baseOffset
 * rewritten), plus its sparse `.index` and `.timeindex`. Files are named by the segment's
 * base offset, zero-padded to 20 digits. A segment knows nothing about fsync policy or
 * partitions; PartitionLog decides what is readable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BATCH_HEADER_SIZE, LOG_OVERHEAD, batchCrcValid } from '../protocol/record-batch.ts';
import { readFully, readFullyInto, readFullyIntoSync, readFullySync } from './fs-async.ts';
import { bufferPool } from './buffer-pool.ts';
import { OffsetIndex, TimeIndex } from './index-file.ts';

export function segmentName(baseOffset: number): string {
  return String(baseOffset).padStart(20, '0');
}

export interface BatchInfo {
  position: number;
  size: number;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  baseTimestamp: number;
  attributes: number;
}

/** Parses the batch header at `pos` of `buf`; null when the header or batch is incomplete. */
export function batchAt(buf: Buffer, pos: number, end: number): { size: number; baseOffset: number; lastOffset: number } | null {
  if (end - pos < LOG_OVERHEAD) return null;
  const batchLength = buf.readInt32BE(pos + 8);
  const size = batchLength + LOG_OVERHEAD;
  if (batchLength < BATCH_HEADER_SIZE - LOG_OVERHEAD || end - pos < size) return null;
  const baseOffset = Number(buf.readBigInt64BE(pos));
  return { size, baseOffset, lastOffset: baseOffset + buf.readInt32BE(pos + 23) };
}

const SCAN_CHUNK = 1 << 20;

export class Segment {
  readonly logPath: string;
  /** Bytes written to the file (some possibly not yet fsync'd). */
  size = 0;
  /** Next offset after the last batch written. */
  nextOffset: number;
  maxTimestamp = -1;
  /** Wall-clock time the segment was created (for roll by age). */
  createdAtMs: number;
  readonly index: OffsetIndex;
  readonly timeIndex: TimeIndex;
  indexLoaded = false;
  private bytesSinceIndex = 0;
  private lastTimeIndexTs = -1;
  fd: number;
  closed = false;
  /** Reads in progress; a deleted segment closes its fd only when they are done. */
  private readers = 0;
  private deleted = false;

  private constructor(
    readonly dir: string,
    readonly baseOffset: number,
    createdAtMs: number,
  ) {
    const stem = path.join(dir, segmentName(baseOffset));
    this.logPath = `${stem}.log`;
    this.index = new OffsetIndex(`${stem}.index`);
    this.timeIndex = new TimeIndex(`${stem}.timeindex`);
    this.nextOffset = baseOffset;
    this.createdAtMs = createdAtMs;
    this.fd = fs.openSync(this.logPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  }

  static create(dir: string, baseOffset: number, nowMs: number): Segment {
    const s = new Segment(dir, baseOffset, nowMs);
    s.indexLoaded = true;
    return s;
  }

  /** Opens an existing segment without scanning it; `nextOffset` is set by the caller or by recover(). */
  static open(dir: string, baseOffset: number, nowMs: number): Segment {
    const s = new Segment(dir, baseOffset, nowMs);
    s.size = fs.fstatSync(s.fd).size;
    return s;
  }

  loadIndexes(): void {
    if (this.indexLoaded) return;
    this.index.load();
    this.timeIndex.load();
    this.indexLoaded = true;
    // A torn index (entry pointing past the file) is rebuilt from the log.
    if (this.index.count > 0 && this.index.position(this.index.count - 1) >= this.size) this.rebuildIndexesSync();
    const t = this.timeIndex.count;
    if (t > 0) {
      this.lastTimeIndexTs = this.timeIndex.timestamp(t - 1);
      this.maxTimestamp = Math.max(this.maxTimestamp, this.lastTimeIndexTs);
    }
  }

  unloadIndexes(): void {
    if (!this.indexLoaded) return;
    this.index.closeSync();
    this.timeIndex.closeSync();
    this.index.unload();
    this.timeIndex.unload();
    this.indexLoaded = false;
  }

  /** Reads the largest timestamp cheaply from the last time-index entry (closed segments). */
  readMaxTimestampFromIndex(): void {
    try {
      const st = fs.statSync(this.timeIndex.path);
      const n = Math.floor(st.size / 12);
      if (n === 0) return;
      const fd = fs.openSync(this.timeIndex.path, 'r');
      try {
        const b = readFullySync(fd, 12, (n - 1) * 12);
        if (b.length === 12) this.maxTimestamp = Math.max(this.maxTimestamp, Number(b.readBigInt64BE(0)));
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      // missing time index: retention falls back to the file's mtime
    }
  }

  /** Bookkeeping after `batch` was written at `position` (indexes, size, offsets). */
  noteAppended(b: BatchInfo, indexIntervalBytes: number): void {
    const rel = b.baseOffset - this.baseOffset;
    if (this.index.count === 0 || this.bytesSinceIndex >= indexIntervalBytes) {
      this.index.append(rel, b.position);
      this.bytesSinceIndex = 0;
      const ts = Math.max(this.maxTimestamp, b.maxTimestamp);
      if (ts > this.lastTimeIndexTs) {
        this.timeIndex.append(ts, rel);
        this.lastTimeIndexTs = ts;
      }
    }
    this.bytesSinceIndex += b.size;
    if (b.maxTimestamp > this.maxTimestamp) this.maxTimestamp = b.maxTimestamp;
    this.size = b.position + b.size;
    this.nextOffset = b.lastOffset + 1;
  }

  /**
   * Validates batches from `fromPosition` to the end of the file (lengths, offsets, CRC-32C),
   * truncates at the first bad or torn batch and re-indexes what it scanned. Returns the
   * number of bytes cut off.
   */
  recover(fromPosition: number, fromOffset: number, indexIntervalBytes: number): number {
    const fileSize = fs.fstatSync(this.fd).size;
    let pos = fromPosition;
    let expected = fromOffset;
    this.size = pos;
    this.nextOffset = fromOffset;
    this.bytesSinceIndex = indexIntervalBytes; // force an index entry at the first scanned batch
    scan: while (pos < fileSize) {
      const chunk = readFullySync(this.fd, Math.min(SCAN_CHUNK, fileSize - pos), pos);
      let at = 0;
      while (at < chunk.length) {
        const head = batchAt(chunk, at, chunk.length);
        if (head === null) {
          // Incomplete in this chunk: a batch bigger than the chunk, or a torn tail.
          if (at === 0) {
            if (chunk.length < LOG_OVERHEAD) break scan;
            const size = chunk.readInt32BE(8) + LOG_OVERHEAD;
            if (size < BATCH_HEADER_SIZE || pos + size > fileSize) break scan;
            const whole = readFullySync(this.fd, size, pos);
            if (!this.acceptScanned(whole, 0, size, pos, expected, indexIntervalBytes)) break scan;
            expected = this.nextOffset;
            pos += size;
          }
          continue scan;
        }
        if (!this.acceptScanned(chunk, at, head.size, pos, expected, indexIntervalBytes)) break scan;
        expected = this.nextOffset;
        at += head.size;
        pos += head.size;
      }
    }
    const cut = fileSize - this.size;
    if (cut > 0) fs.ftruncateSync(this.fd, this.size);
    return cut;
  }

  /**
   * Crash recovery of a segment: index entries below `recoveryOffset` (fsync'd before the last
   * checkpoint) that point inside the file are trusted; everything from the last of them on is
   * re-validated, re-indexed, and a torn or corrupt tail is cut. Returns the bytes cut.
   */
  recoverTail(recoveryOffset: number, indexIntervalBytes: number): number {
    this.loadIndexes();
    const fileSize = fs.fstatSync(this.fd).size;
    let i = this.index.floor(recoveryOffset - this.baseOffset - 1);
    while (i >= 0 && this.index.position(i) >= fileSize) i--;
    const fromPos = i >= 0 ? this.index.position(i) : 0;
    const fromRel = i >= 0 ? this.index.relOffset(i) : 0;
    this.index.truncateTo(Math.max(i, 0));
    let j = this.timeIndex.count;
    while (j > 0 && this.timeIndex.relOffset(j - 1) >= fromRel) j--;
    this.timeIndex.truncateTo(j);
    this.lastTimeIndexTs = j > 0 ? this.timeIndex.timestamp(j - 1) : -1;
    this.maxTimestamp = this.lastTimeIndexTs;
    return this.recover(fromPos, this.baseOffset + fromRel, indexIntervalBytes);
  }

  private acceptScanned(buf: Buffer, at: number, size: number, position: number, expected: number, interval: number): boolean {
    if (buf.readInt8(at + 16) !== 2) return false;
    const baseOffset = Number(buf.readBigInt64BE(at));
    if (baseOffset !== expected) return false;
    if (!batchCrcValid(buf, at, size)) return false;
    const lastOffset = baseOffset + buf.readInt32BE(at + 23);
    if (lastOffset < baseOffset) return false;
    this.noteAppended(
      {
        position,
        size,
        baseOffset,
        lastOffset,
        maxTimestamp: Number(buf.readBigInt64BE(at + 35)),
        baseTimestamp: Number(buf.readBigInt64BE(at + 27)),
        attributes: buf.readInt16BE(at + 21),
      },
      interval,
    );
    return true;
  }

  private rebuildIndexesSync(): void {
    this.index.truncateTo(0);
    this.timeIndex.truncateTo(0);
    this.lastTimeIndexTs = -1;
    this.maxTimestamp = -1;
    this.recover(0, this.baseOffset, 4096);
  }

  /**
   * File position of the batch containing `offset` (or the first batch after it), scanning
   * batch headers forward from the nearest index entry. Returns `limit` when none is below it.
   */
  async findPosition(offset: number, limit: number): Promise<number> {
    this.loadIndexes();
    const i = this.index.floor(offset - this.baseOffset);
    let pos = i >= 0 ? this.index.position(i) : 0;
    const head = Buffer.allocUnsafe(LOG_OVERHEAD + 15);
    while (pos < limit) {
      const n = fs.readSync(this.fd, head, 0, head.length, pos);
      if (n < 27) return limit;
      const size = head.readInt32BE(8) + LOG_OVERHEAD;
      const last = Number(head.readBigInt64BE(0)) + head.readInt32BE(23);
      if (last >= offset) return pos;
      pos += size;
    }
    return limit;
  }

  /**
   * Reads whole batches from `position`, at most `maxBytes` (but always the first batch
   * whole, KIP-74), never past `limit`. Returns the bytes and the offset after the last batch.
   * `sync`: read on the calling thread instead of the libuv pool (for bytes just written, which
   * are in the page cache). The bytes are in a buffer of `bufferPool`: the caller may hand it
   * back with bufferPool.release() once nothing reads it any more (see buffer-pool.ts).
   */
  async read(position: number, maxBytes: number, limit: number, sync = false): Promise<{ data: Buffer; nextOffset: number; end: number } | null> {
    if (position >= limit) return null;
    let want = Math.min(maxBytes, limit - position);
    if (want < LOG_OVERHEAD) want = Math.min(LOG_OVERHEAD, limit - position);
    const readAt = (length: number, at: number) => {
      const buf = bufferPool.acquire(length);
      return sync ? readFullyIntoSync(this.fd, buf, at) : readFullyInto(this.fd, buf, at);
    };
    let data = await readAt(want, position);
    let first = batchAt(data, 0, data.length);
    if (first === null) {
      // The first batch is larger than maxBytes: read it whole (KIP-74).
      const size = data.length < LOG_OVERHEAD ? -1 : data.readInt32BE(8) + LOG_OVERHEAD;
      bufferPool.release(data);
      if (size < 0 || position + size > limit) return null;
      data = await readAt(size, position);
      first = batchAt(data, 0, data.length);
      if (first === null) {
        bufferPool.release(data);
        return null;
      }
    }
    let end = first.size;
    let nextOffset = first.lastOffset + 1;
    for (;;) {
      const b = batchAt(data, end, data.length);
      if (b === null) break;
      end += b.size;
      nextOffset = b.lastOffset + 1;
    }
    return { data: end === data.length ? data : data.subarray(0, end), nextOffset, end: position + end };
  }

  /** Batches from `position` up to `limit`, headers only, for timestamp lookups. */
  async *batches(position: number, limit: number): AsyncGenerator<BatchInfo & { bytes: () => Promise<Buffer> }> {
    let pos = position;
    const head = Buffer.allocUnsafe(BATCH_HEADER_SIZE);
    while (pos + BATCH_HEADER_SIZE <= limit) {
      const got = await readFully(this.fd, BATCH_HEADER_SIZE, pos);
      if (got.length < BATCH_HEADER_SIZE) return;
      got.copy(head);
      const size = head.readInt32BE(8) + LOG_OVERHEAD;
      const baseOffset = Number(head.readBigInt64BE(0));
      const at = pos;
      yield {
        position: at,
        size,
        baseOffset,
        lastOffset: baseOffset + head.readInt32BE(23),
        baseTimestamp: Number(head.readBigInt64BE(27)),
        maxTimestamp: Number(head.readBigInt64BE(35)),
        attributes: head.readInt16BE(21),
        bytes: () => readFully(this.fd, size, at),
      };
      pos += size;
    }
  }

  /** Cuts the segment back to `position` (after a failed write round). */
  truncateTo(position: number, nextOffset: number): void {
    if (this.indexLoaded) {
      let i = this.index.count;
      while (i > 0 && this.index.position(i - 1) >= position) i--;
      this.index.truncateTo(i);
      const rel = nextOffset - this.baseOffset;
      let j = this.timeIndex.count;
      while (j > 0 && this.timeIndex.relOffset(j - 1) >= rel) j--;
      this.timeIndex.truncateTo(j);
    }
    this.size = position;
    this.nextOffset = nextOffset;
    fs.ftruncateSync(this.fd, position);
  }

  acquire(): boolean {
    if (this.deleted || this.closed) return false;
    this.readers++;
    return true;
  }

  release(): void {
    this.readers--;
    if (this.deleted && this.readers === 0) this.closeSync();
  }

  /** Calls `fn` with the header of every batch whose offsets reach `fromOffset` or later (sync; used at start-up). */
  forEachBatchHeaderSync(
    fromOffset: number,
    fn: (h: { baseOffset: number; lastOffset: number; producerId: number; producerEpoch: number; baseSequence: number }) => void,
  ): void {
    this.loadIndexes();
    const i = this.index.floor(fromOffset - this.baseOffset);
    let pos = i >= 0 ? this.index.position(i) : 0;
    while (pos + BATCH_HEADER_SIZE <= this.size) {
      const h = readFullySync(this.fd, BATCH_HEADER_SIZE, pos);
      if (h.length < BATCH_HEADER_SIZE) return;
      const baseOffset = Number(h.readBigInt64BE(0));
      const lastOffset = baseOffset + h.readInt32BE(23);
      if (lastOffset >= fromOffset) {
        fn({ baseOffset, lastOffset, producerId: Number(h.readBigInt64BE(43)), producerEpoch: h.readInt16BE(51), baseSequence: h.readInt32BE(53) });
      }
      pos += h.readInt32BE(8) + LOG_OVERHEAD;
    }
  }

  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    this.index.closeSync();
    this.timeIndex.closeSync();
    fs.closeSync(this.fd);
  }

  deleteSync(): void {
    this.deleted = true;
    if (this.readers === 0) this.closeSync();
    for (const p of [this.logPath, this.index.path, this.timeIndex.path]) fs.rmSync(p, { force: true });
  }
}
