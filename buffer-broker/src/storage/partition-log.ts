/**
 * PartitionLog: the ordered list of segments of one topic-partition, and the only place
 * offsets are assigned.
 *
 * Invariants:
 * - append() assigns offsets synchronously in call order; bytes reach the file only in the
 *   LogManager's flush rounds (group commit), which run one at a time.
 * - highWatermark (HW) = first offset not yet durable; nothing at or above it is ever served.
 * - A failed write or fsync rejects every pending append, cuts the files back to the durable
 *   size and resets the next offset to HW, so no offset is ever given to two batches.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import { firstRecordAtOrAfter, recordTimestampAt } from '../protocol/record-batch.ts';
import { fsyncDirSync, writeFileAtomic } from './fs-async.ts';
import { ProducerStateTable, nextSeq } from './producer-state.ts';
import { Segment, type BatchInfo } from './segment.ts';

export interface LogConfig {
  segmentBytes: number;
  segmentMs: number;
  indexIntervalBytes: number;
  retentionMs: number;
  /** Per-partition size cap; -1 = none. */
  retentionBytes: number;
}

export interface AppendInput {
  /** The whole batch as received; bytes 0-7 and 12-15 are overwritten here. */
  bytes: Buffer;
  lastOffsetDelta: number;
  maxTimestamp: number;
  baseTimestamp: number;
  attributes: number;
  /** -1 for non-idempotent producers. */
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

/** An idempotent-producer sequence problem: the batch was not appended. */
export class ProducerSequenceError extends Error {
  constructor(readonly code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' | 'INVALID_PRODUCER_EPOCH') {
    super(code);
  }
}

interface Pending {
  bytes: Buffer;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  baseTimestamp: number;
  attributes: number;
  resolve: (baseOffset: number) => void;
  reject: (err: Error) => void;
}

export class StorageError extends Error {
  readonly code = 'STORAGE_ERROR';
  override readonly cause: unknown;
  constructor(message: string, cause?: unknown) {
    super(message);
    this.cause = cause;
  }
}

export interface ReadResult {
  errorCode: 'NONE' | 'OFFSET_OUT_OF_RANGE';
  data: Buffer | null;
  /** Offset after the last batch returned (= the next fetch position). */
  nextOffset: number;
  highWatermark: number;
  logStartOffset: number;
}

const MAX_LOADED_CLOSED_INDEXES = 4;
/**
 * Reads that start within this many bytes of the durable end of the active segment are done
 * synchronously: those bytes were written moments ago and are in the page cache, so the copy
 * costs less than a trip through the libuv thread pool (which also queues behind fdatasyncs).
 * Older data, which may have to come from the disk, is read in the pool.
 */
const HOT_READ_BYTES = 64 * 1024 * 1024;

export class PartitionLog {
  segments: Segment[] = [];
  /** Next offset to assign. */
  nextOffset = 0;
  highWatermark = 0;
  /** Segment and byte position in it that HW corresponds to. */
  private hwSegment: Segment | null = null;
  private hwPosition = 0;
  private pending: Pending[] = [];
  private waiters = new Set<() => void>();
  private readCache: { segment: Segment; offset: number; position: number } | null = null;
  private loadedClosed: Segment[] = [];
  bytesIn = 0;
  messagesIn = 0;
  producerState = new ProducerStateTable();
  /** The offset of the last producer-state snapshot written (-1: none since start). */
  private snapshotOffset = -1;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly dir: string,
    private readonly config: LogConfig,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  get logStartOffset(): number {
    return this.segments.length > 0 ? this.segments[0].baseOffset : 0;
  }

  get activeSegment(): Segment {
    return this.segments[this.segments.length - 1];
  }

  get sizeBytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.size;
    return n;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /**
   * Opens the partition directory. Segments wholly below `recoveryOffset` are trusted; the
   * rest are validated batch by batch and a torn or corrupt tail is truncated.
   */
  open(recoveryOffset: number): void {
    fs.mkdirSync(this.dir, { recursive: true });
    const bases = fs
      .readdirSync(this.dir)
      .filter((f) => /^\d{20}\.log$/.test(f))
      .map((f) => Number(f.slice(0, 20)))
      .sort((a, b) => a - b);
    // Stray index files of a segment whose .log is gone are removed.
    for (const f of fs.readdirSync(this.dir)) {
      const m = /^(\d{20})\.(index|timeindex)$/.exec(f);
      if (m && !bases.includes(Number(m[1]))) fs.rmSync(path.join(this.dir, f), { force: true });
    }
    const now = this.now();
    this.segments = bases.map((b) => Segment.open(this.dir, b, now));
    for (let i = 0; i + 1 < this.segments.length; i++) this.segments[i].nextOffset = this.segments[i + 1].baseOffset;
    if (this.segments.length === 0) {
      this.segments.push(Segment.create(this.dir, 0, now));
      fsyncDirSync(this.dir);
    }
    // Recover from the segment containing the recovery point onwards.
    let first = this.segments.length - 1;
    while (first > 0 && this.segments[first].baseOffset > recoveryOffset) first--;
    for (let i = 0; i < first; i++) this.segments[i].readMaxTimestampFromIndex();
    for (let i = first; i < this.segments.length; i++) {
      const seg = this.segments[i];
      const cut = seg.recoverTail(i === first ? recoveryOffset : seg.baseOffset, this.config.indexIntervalBytes);
      const isLast = i === this.segments.length - 1;
      const next = isLast ? undefined : this.segments[i + 1];
      if (cut > 0) this.log.warn({ topic: this.topic, partition: this.partition, segment: seg.baseOffset, bytesCut: cut }, 'truncated a torn or corrupt log tail');
      if (next && seg.nextOffset !== next.baseOffset) {
        // A gap: everything after this point was never acknowledged (fsync is ordered by round).
        for (const dropped of this.segments.splice(i + 1)) {
          this.log.warn({ topic: this.topic, partition: this.partition, segment: dropped.baseOffset }, 'dropped a segment after a truncated one');
          dropped.deleteSync();
        }
        break;
      }
    }
    const active = this.activeSegment;
    if (active.size > 0) {
      active.createdAtMs = Math.min(now, fs.fstatSync(active.fd).mtimeMs);
    }
    this.nextOffset = active.nextOffset;
    this.highWatermark = this.nextOffset;
    this.hwSegment = active;
    this.hwPosition = active.size;
  }

  /**
   * Assigns offsets and queues the batch for the next flush round. A retried idempotent batch
   * resolves with its original base offset (once that is durable) and is not appended again.
   */
  append(input: AppendInput): Promise<number> {
    if (input.producerId >= 0) {
      const lastSeq = nextSeq(input.baseSequence, input.lastOffsetDelta);
      const c = this.producerState.check(input.producerId, input.producerEpoch, input.baseSequence, lastSeq);
      if (c.kind === 'duplicate') return c.batch.durable;
      if (c.kind === 'error') return Promise.reject(new ProducerSequenceError(c.code));
      const durable = this.appendUnchecked(input);
      this.producerState.record(input.producerId, input.producerEpoch, input.baseSequence, lastSeq, this.nextOffset - input.lastOffsetDelta - 1, durable);
      return durable;
    }
    return this.appendUnchecked(input);
  }

  private appendUnchecked(input: AppendInput): Promise<number> {
    const baseOffset = this.nextOffset;
    const lastOffset = baseOffset + input.lastOffsetDelta;
    this.nextOffset = lastOffset + 1;
    input.bytes.writeBigInt64BE(BigInt(baseOffset), 0);
    input.bytes.writeInt32BE(0, 12); // partitionLeaderEpoch: single node, epoch 0
    this.bytesIn += input.bytes.length;
    this.messagesIn += input.lastOffsetDelta + 1;
    return new Promise<number>((resolve, reject) => {
      this.pending.push({
        bytes: input.bytes,
        baseOffset,
        lastOffset,
        maxTimestamp: input.maxTimestamp,
        baseTimestamp: input.baseTimestamp,
        attributes: input.attributes,
        resolve,
        reject,
      });
    });
  }

  /**
   * Flush round, step 1: writes every pending batch (rolling segments as needed). Returns the
   * completion callbacks and the fds that must be fdatasync'd before calling `commit`.
   */
  async writePending(): Promise<{ fds: number[]; commit: () => void; fail: (err: Error) => void }> {
    const batch = this.pending;
    this.pending = [];
    const touched: { seg: Segment; startSize: number; infos: BatchInfo[]; bufs: Buffer[] }[] = [];
    let cur: (typeof touched)[number] | null = null;
    let pos = this.activeSegment.size;
    const now = this.now();
    for (const p of batch) {
      const active = this.activeSegment;
      const occupied = pos > 0;
      if (occupied && (pos + p.bytes.length > this.config.segmentBytes || now - active.createdAtMs >= this.config.segmentMs)) {
        this.roll(p.baseOffset, now);
        pos = 0;
      }
      const seg = this.activeSegment;
      if (cur === null || cur.seg !== seg) {
        cur = { seg, startSize: pos, infos: [], bufs: [] };
        touched.push(cur);
      }
      cur.bufs.push(p.bytes);
      cur.infos.push({
        position: pos,
        size: p.bytes.length,
        baseOffset: p.baseOffset,
        lastOffset: p.lastOffset,
        maxTimestamp: p.maxTimestamp,
        baseTimestamp: p.baseTimestamp,
        attributes: p.attributes,
      });
      pos += p.bytes.length;
    }
    const fail = (err: Error) => this.failRound(batch, touched, err);
    try {
      for (const t of touched) {
        // writev takes at most IOV_MAX (1024) buffers at a time.
        for (let i = 0; i < t.bufs.length; i += 1024) {
          const part = t.bufs.slice(i, i + 1024);
          writeAllvSync(t.seg.fd, part, t.infos[i].position);
        }
        for (const info of t.infos) t.seg.noteAppended(info, this.config.indexIntervalBytes);
      }
    } catch (err) {
      fail(err as Error);
      return { fds: [], commit: () => undefined, fail: () => undefined };
    }
    const commit = () => {
      const last = touched[touched.length - 1];
      if (last) {
        this.hwSegment = last.seg;
        this.hwPosition = last.seg.size;
        this.highWatermark = last.seg.nextOffset;
      }
      for (const p of batch) p.resolve(p.baseOffset);
      if (batch.length > 0) this.wake();
    };
    return { fds: touched.map((t) => t.seg.fd), commit, fail };
  }

  private failRound(batch: Pending[], touched: { seg: Segment; startSize: number }[], err: Error): void {
    const queued = this.pending;
    this.pending = [];
    const error = new StorageError(`write failed: ${err.message}`, err);
    this.log.error({ err, topic: this.topic, partition: this.partition }, 'log write failed; rejecting pending appends');
    // Cut the files back to what is durable and forget the offsets handed out since.
    for (const t of touched) {
      const keep = t.seg === this.hwSegment ? this.hwPosition : t.seg.baseOffset >= this.highWatermark ? 0 : t.startSize;
      try {
        t.seg.truncateTo(keep, Math.min(t.seg.nextOffset, this.highWatermark));
      } catch (e) {
        this.log.error({ err: e }, 'truncate after a failed write failed');
      }
    }
    while (this.segments.length > 1 && this.activeSegment.baseOffset > this.highWatermark) {
      const dead = this.segments.pop() as Segment;
      dead.deleteSync();
    }
    this.nextOffset = this.highWatermark;
    this.activeSegment.nextOffset = this.highWatermark;
    this.producerState.truncateFrom(this.highWatermark);
    this.readCache = null;
    for (const p of batch) p.reject(error);
    for (const p of queued) p.reject(error);
  }

  private roll(baseOffset: number, now: number): void {
    const old = this.activeSegment;
    const seg = Segment.create(this.dir, baseOffset, now);
    this.segments.push(seg);
    fsyncDirSync(this.dir);
    // The closed segment's indexes go to disk now; they are reloaded lazily when read.
    Promise.all([old.index.sync(), old.timeIndex.sync()]).then(
      () => this.touchClosed(old),
      (err: unknown) => this.log.warn({ err }, 'index sync after roll failed (indexes are rebuilt on recovery)'),
    );
    this.log.debug({ topic: this.topic, partition: this.partition, baseOffset }, 'rolled segment');
  }

  /** Marks a closed segment's indexes as recently used; unloads the least recently used. */
  private touchClosed(seg: Segment): void {
    if (seg === this.activeSegment) return;
    const i = this.loadedClosed.indexOf(seg);
    if (i >= 0) this.loadedClosed.splice(i, 1);
    this.loadedClosed.push(seg);
    while (this.loadedClosed.length > MAX_LOADED_CLOSED_INDEXES) {
      const evict = this.loadedClosed.shift() as Segment;
      if (evict !== this.activeSegment) evict.unloadIndexes();
    }
  }

  /** Bytes of this segment that may be served (durable and below HW). */
  private readLimit(seg: Segment): number {
    if (seg === this.hwSegment) return this.hwPosition;
    if (this.hwSegment === null) return 0;
    return seg.baseOffset < this.hwSegment.baseOffset ? seg.size : 0;
  }

  private segmentFor(offset: number): Segment | null {
    let lo = 0;
    let hi = this.segments.length - 1;
    let ans: Segment | null = null;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segments[mid].baseOffset <= offset) {
        ans = this.segments[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  /** Whole batches from the one containing `offset`, at most `maxBytes` (first batch always whole). */
  async read(offset: number, maxBytes: number): Promise<ReadResult> {
    const hw = this.highWatermark;
    const logStartOffset = this.logStartOffset;
    if (offset < logStartOffset || offset > hw) return { errorCode: 'OFFSET_OUT_OF_RANGE', data: null, nextOffset: offset, highWatermark: hw, logStartOffset };
    if (offset === hw) return { errorCode: 'NONE', data: null, nextOffset: offset, highWatermark: hw, logStartOffset };
    let seg = this.segmentFor(offset);
    while (seg !== null) {
      if (!seg.acquire()) return this.read(offset, maxBytes); // deleted under us: retry on the new list
      try {
        const limit = this.readLimit(seg);
        const c = this.readCache;
        const position = c !== null && c.segment === seg && c.offset === offset ? c.position : await seg.findPosition(offset, limit);
        if (seg !== this.activeSegment) this.touchClosed(seg);
        const r = await seg.read(position, maxBytes, limit, seg === this.activeSegment && limit - position <= HOT_READ_BYTES);
        if (r !== null) {
          this.readCache = { segment: seg, offset: r.nextOffset, position: r.end };
          return { errorCode: 'NONE', data: r.data, nextOffset: r.nextOffset, highWatermark: hw, logStartOffset };
        }
      } finally {
        seg.release();
      }
      // Nothing at or after `offset` in this segment: continue in the next one.
      const i = this.segments.indexOf(seg);
      seg = i >= 0 && i + 1 < this.segments.length ? this.segments[i + 1] : null;
    }
    return { errorCode: 'NONE', data: null, nextOffset: offset, highWatermark: hw, logStartOffset };
  }

  /** Timestamp of the record at `offset` (for lag in seconds), or null when there is none below HW. */
  async timestampAt(offset: number): Promise<number | null> {
    if (offset < this.logStartOffset || offset >= this.highWatermark) return null;
    const seg = this.segmentFor(offset);
    if (seg === null || !seg.acquire()) return null;
    try {
      const limit = this.readLimit(seg);
      const pos = await seg.findPosition(offset, limit);
      for await (const b of seg.batches(pos, limit)) return recordTimestampAt(await b.bytes(), offset, gunzipSync);
      return null;
    } finally {
      seg.release();
    }
  }

  /** The earliest offset whose record timestamp is >= ts, or null. */
  async offsetForTimestamp(ts: number): Promise<{ offset: number; timestamp: number } | null> {
    for (const seg of [...this.segments]) {
      if (seg.maxTimestamp >= 0 && seg.maxTimestamp < ts) continue;
      if (!seg.acquire()) continue;
      try {
        const limit = this.readLimit(seg);
        seg.loadIndexes();
        if (seg !== this.activeSegment) this.touchClosed(seg);
        const j = seg.timeIndex.lastBefore(ts);
        const startOffset = seg.baseOffset + (j >= 0 ? seg.timeIndex.relOffset(j) : 0);
        const pos = await seg.findPosition(startOffset, limit);
        for await (const b of seg.batches(pos, limit)) {
          if (b.maxTimestamp < ts) continue;
          const hit = firstRecordAtOrAfter(await b.bytes(), ts, gunzipSync);
          if (hit !== null) return hit;
        }
      } finally {
        seg.release();
      }
    }
    return null;
  }

  /** Resolves when HW moves (or the returned cancel function is called). */
  onAdvance(cb: () => void): () => void {
    this.waiters.add(cb);
    return () => this.waiters.delete(cb);
  }

  wake(): void {
    if (this.waiters.size === 0) return;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** Deletes whole old segments beyond the time or size limit; never the active one. */
  enforceRetention(): { deletedSegments: number; deletedBytes: number } {
    const now = this.now();
    let deletedSegments = 0;
    let deletedBytes = 0;
    let total = this.sizeBytes;
    while (this.segments.length > 1) {
      const seg = this.segments[0];
      if (seg.baseOffset >= this.highWatermark) break;
      let newest = seg.maxTimestamp;
      if (newest < 0) {
        try {
          newest = fs.statSync(seg.logPath).mtimeMs;
        } catch {
          newest = now;
        }
      }
      const expired = this.config.retentionMs >= 0 && newest < now - this.config.retentionMs;
      const oversize = this.config.retentionBytes >= 0 && total - seg.size >= this.config.retentionBytes;
      if (!expired && !oversize) break;
      this.segments.shift();
      const li = this.loadedClosed.indexOf(seg);
      if (li >= 0) this.loadedClosed.splice(li, 1);
      if (this.readCache?.segment === seg) this.readCache = null;
      total -= seg.size;
      deletedBytes += seg.size;
      deletedSegments++;
      seg.deleteSync();
      this.log.info(
        { topic: this.topic, partition: this.partition, segment: seg.baseOffset, reason: expired ? 'time' : 'size' },
        'deleted segment by retention',
      );
    }
    if (deletedSegments > 0) fsyncDirSync(this.dir);
    return { deletedSegments, deletedBytes };
  }

  private get producerSnapshotPath(): string {
    return path.join(this.dir, 'producer-state.json');
  }

  /**
   * Rebuilds idempotent-producer state: the snapshot taken at the last checkpoint, then the
   * batch headers after it (or, without a snapshot, the last two segments).
   */
  loadProducerState(): void {
    let from = this.segments.length >= 2 ? this.segments[this.segments.length - 2].baseOffset : this.logStartOffset;
    try {
      const snap = JSON.parse(fs.readFileSync(this.producerSnapshotPath, 'utf8')) as { offset: number; producers: unknown };
      if (snap.offset <= this.nextOffset && snap.offset >= this.logStartOffset) {
        this.producerState = ProducerStateTable.fromJSON(snap.producers, snap.offset);
        from = snap.offset;
      }
    } catch {
      // no snapshot yet
    }
    for (const seg of this.segments) {
      if (seg.nextOffset <= from && seg !== this.activeSegment) continue;
      seg.forEachBatchHeaderSync(from, (h) => {
        if (h.producerId >= 0) {
          const lastSeq = nextSeq(h.baseSequence, h.lastOffset - h.baseOffset);
          this.producerState.record(h.producerId, h.producerEpoch, h.baseSequence, lastSeq, h.baseOffset, Promise.resolve(h.baseOffset));
        }
      });
    }
  }

  /**
   * Writes the producer-state snapshot valid below `offset` (taken at checkpoints), off the event
   * loop; resolves false without writing when the last snapshot was taken at the same offset (its
   * contents would be the same). Checkpoints run one at a time, so snapshots of a partition never
   * overlap.
   */
  async snapshotProducerState(offset: number): Promise<boolean> {
    if (offset === this.snapshotOffset) return false;
    const producers: Record<string, unknown> = {};
    for (const [pid, e] of Object.entries(this.producerState.toJSON())) {
      const batches = e.batches.filter(([, , base]) => base < offset);
      if (batches.length > 0) producers[pid] = { ...e, batches };
    }
    await writeFileAtomic(this.producerSnapshotPath, JSON.stringify({ offset, producers }));
    this.snapshotOffset = offset;
    return true;
  }

  /** Makes the active segment's indexes durable (before a recovery checkpoint); resolves to the number of files synced (unchanged ones are skipped). */
  async syncIndexes(): Promise<number> {
    const a = this.activeSegment;
    const synced = await Promise.all([a.index.sync(), a.timeIndex.sync()]);
    return synced.filter(Boolean).length;
  }

  failPending(err: Error): void {
    const queued = this.pending;
    this.pending = [];
    for (const p of queued) p.reject(err);
  }

  closeSync(): void {
    this.wake();
    for (const s of this.segments) s.closeSync();
  }

  deleteSync(): void {
    this.failPending(new StorageError('topic deleted'));
    this.wake();
    for (const s of this.segments) s.deleteSync();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Writes every buffer at `position`, synchronously: a write to the page cache takes microseconds,
 * less than handing it to the libuv thread pool and waking the event loop again (on a busy
 * machine each such hop costs far more than the copy). Only fdatasync goes to the pool.
 */
function writeAllvSync(fd: number, bufs: Buffer[], position: number): void {
  let total = 0;
  for (const b of bufs) total += b.length;
  let written = fs.writevSync(fd, bufs, position);
  if (written === total) return;
  // Short write: finish the rest buffer by buffer.
  let pos = position;
  for (const b of bufs) {
    if (written >= b.length) {
      written -= b.length;
      pos += b.length;
      continue;
    }
    let off = written;
    written = 0;
    while (off < b.length) {
      const n = fs.writevSync(fd, [b.subarray(off)], pos + off);
      if (n <= 0) throw new StorageError('short write');
      off += n;
    }
    pos += b.length;
  }
}
