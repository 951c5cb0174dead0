/**
 * Sparse index files beside each segment, Kafka style:
 *   .index      entries of 8 bytes: relativeOffset INT32, position INT32 (one per ~4 KiB of log)
 *   .timeindex  entries of 12 bytes: maxTimestampSoFar INT64, relativeOffset INT32
 * Entries are strictly increasing. Index files are derived data: they are appended without
 * fsync and fsync'd before a recovery checkpoint; recovery truncates and rebuilds their tail.
 * sync() skips a file that has not changed since its last sync, so a checkpoint costs one
 * fdatasync per changed index, not one per index of every partition (on ext4 without a journal,
 * as here, each fdatasync also flushes the disk's cache, even for an unchanged file).
 */
import fs from 'node:fs';
import { fdatasync, writev } from './fs-async.ts';

export class IndexFile {
  private data: Buffer;
  count = 0;
  /** Entries [persistedCount, count) are not yet written to the file. */
  private persistedCount = 0;
  private fd: number | null = null;
  /** Bumped by every change to the entries or the file (append, truncate, load); sync() records the value it made durable. */
  private changes = 0;
  private syncedChanges = 0;

  constructor(
    readonly path: string,
    readonly entrySize: number,
  ) {
    this.data = Buffer.alloc(entrySize * 64);
  }

  /** Loads entries from the file, dropping a torn trailing partial entry. */
  load(): void {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      bytes = Buffer.alloc(0);
    }
    const n = Math.floor(bytes.length / this.entrySize);
    this.data = Buffer.alloc(Math.max(n, 64) * this.entrySize);
    bytes.copy(this.data, 0, 0, n * this.entrySize);
    this.count = n;
    this.persistedCount = n;
    this.changes++;
  }

  /** Keeps only the first `n` entries, in memory and on disk. */
  truncateTo(n: number): void {
    if (n >= this.count) return;
    this.count = n;
    this.persistedCount = Math.min(this.persistedCount, n);
    this.changes++;
    this.openForAppend();
    fs.ftruncateSync(this.fd as number, n * this.entrySize);
  }

  unload(): void {
    this.data = Buffer.alloc(0);
    this.count = 0;
    this.persistedCount = 0;
  }

  protected slot(): number {
    if ((this.count + 1) * this.entrySize > this.data.length) {
      const bigger = Buffer.alloc(this.data.length * 2 + this.entrySize * 64);
      this.data.copy(bigger, 0, 0, this.count * this.entrySize);
      this.data = bigger;
    }
    this.changes++;
    return this.count++ * this.entrySize;
  }

  protected get buf(): Buffer {
    return this.data;
  }

  private openForAppend(): void {
    if (this.fd === null) this.fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  }

  /** Writes entries not yet on disk (no fsync). */
  async persist(): Promise<void> {
    if (this.persistedCount === this.count) return;
    this.openForAppend();
    const from = this.persistedCount;
    const to = this.count;
    this.persistedCount = to;
    const slice = Buffer.from(this.data.subarray(from * this.entrySize, to * this.entrySize));
    await writev(this.fd as number, [slice], from * this.entrySize);
  }

  /** Writes and fdatasyncs what changed since the last sync; true if there was anything to sync. */
  async sync(): Promise<boolean> {
    const changes = this.changes;
    if (changes === this.syncedChanges) return false;
    await this.persist();
    if (this.fd !== null) await fdatasync(this.fd);
    this.syncedChanges = Math.max(this.syncedChanges, changes);
    return true;
  }

  closeSync(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

export class OffsetIndex extends IndexFile {
  constructor(path: string) {
    super(path, 8);
  }
  append(relOffset: number, position: number): void {
    const at = this.slot();
    this.buf.writeInt32BE(relOffset, at);
    this.buf.writeInt32BE(position, at + 4);
  }
  relOffset(i: number): number {
    return this.buf.readInt32BE(i * 8);
  }
  position(i: number): number {
    return this.buf.readInt32BE(i * 8 + 4);
  }
  /** Index of the last entry with relOffset <= rel, or -1. */
  floor(rel: number): number {
    let lo = 0;
    let hi = this.count - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.relOffset(mid) <= rel) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }
}

export class TimeIndex extends IndexFile {
  constructor(path: string) {
    super(path, 12);
  }
  append(timestamp: number, relOffset: number): void {
    const at = this.slot();
    this.buf.writeBigInt64BE(BigInt(timestamp), at);
    this.buf.writeInt32BE(relOffset, at + 8);
  }
  timestamp(i: number): number {
    return Number(this.buf.readBigInt64BE(i * 12));
  }
  relOffset(i: number): number {
    return this.buf.readInt32BE(i * 12 + 8);
  }
  /** Index of the last entry with timestamp < ts, or -1. */
  lastBefore(ts: number): number {
    let lo = 0;
    let hi = this.count - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timestamp(mid) < ts) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }
}
