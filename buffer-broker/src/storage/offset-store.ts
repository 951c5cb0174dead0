/**
 * Durable committed offsets of consumer groups.
 *
 * `offsets.log` is an append-only file of frames `[length u32][crc32c u32][JSON]`; each frame is
 * one commit (several partitions) or a group deletion. Commits are acknowledged only after
 * fdatasync, and concurrent commits share one fsync (group commit). On start the latest
 * `offsets.snapshot` is loaded and the log replayed; a torn or corrupt tail frame ends the
 * replay and is cut. When the log grows past a threshold it is folded into a new snapshot
 * (written to a temp file, fsync'd, renamed) and emptied.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Logger } from 'pino';
import type { CommittedOffset, OffsetStore } from '../coordinator/offset-store.ts';
import { fdatasync, writeFileAtomicSync } from './fs-async.ts';

type OffsetEntry = CommittedOffset;

type Frame = { t: 'commit'; g: string; e: [string, number, number, number, string, number][] } | { t: 'delete'; g: string };

const COMPACT_BYTES = 16 * 1024 * 1024;

export class DurableOffsetStore implements OffsetStore {
  private readonly groups = new Map<string, Map<string, OffsetEntry>>();
  private fd = -1;
  private size = 0;
  private queue: { frame: Buffer; apply: () => void; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing = false;
  private readonly logPath: string;
  private readonly snapshotPath: string;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly compactBytes = COMPACT_BYTES,
  ) {
    this.logPath = path.join(dir, 'offsets.log');
    this.snapshotPath = path.join(dir, 'offsets.snapshot');
  }

  open(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    try {
      const snap = JSON.parse(fs.readFileSync(this.snapshotPath, 'utf8')) as Record<string, OffsetEntry[]>;
      for (const [g, entries] of Object.entries(snap)) this.groups.set(g, new Map(entries.map((e) => [`${e.topic}\u0000${e.partition}`, e])));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.fd = fs.openSync(this.logPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    const data = fs.readFileSync(this.logPath);
    let pos = 0;
    while (pos + 8 <= data.length) {
      const len = data.readUInt32BE(pos);
      if (pos + 8 + len > data.length) break;
      const body = data.subarray(pos + 8, pos + 8 + len);
      if (crc32c(body) !== data.readUInt32BE(pos + 4)) break;
      let frame: Frame;
      try {
        frame = JSON.parse(body.toString('utf8')) as Frame;
      } catch {
        break;
      }
      this.applyFrame(frame);
      pos += 8 + len;
    }
    if (pos < data.length) {
      this.log.warn({ file: this.logPath, bytesCut: data.length - pos }, 'truncated a torn offsets log tail');
      fs.ftruncateSync(this.fd, pos);
    }
    this.size = pos;
  }

  private applyFrame(f: Frame): void {
    if (f.t === 'delete') {
      this.groups.delete(f.g);
      return;
    }
    let m = this.groups.get(f.g);
    if (!m) this.groups.set(f.g, (m = new Map()));
    for (const [topic, partition, offset, leaderEpoch, metadata, commitTimestampMs] of f.e) {
      m.set(`${topic}\u0000${partition}`, { topic, partition, offset, leaderEpoch, metadata, commitTimestampMs });
    }
  }

  get(group: string, topic: string, partition: number): OffsetEntry | undefined {
    return this.groups.get(group)?.get(`${topic}\u0000${partition}`);
  }

  list(group: string): OffsetEntry[] {
    return [...(this.groups.get(group)?.values() ?? [])];
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  hasGroup(group: string): boolean {
    return this.groups.has(group);
  }

  /** Durably records the offsets (all or nothing); resolves after fsync, and only then are they visible. */
  put(group: string, entries: readonly OffsetEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    const frame: Frame = { t: 'commit', g: group, e: entries.map((e) => [e.topic, e.partition, e.offset, e.leaderEpoch, e.metadata, e.commitTimestampMs]) };
    return this.enqueue(frame);
  }

  deleteGroup(group: string): Promise<void> {
    return this.enqueue({ t: 'delete', g: group });
  }

  private enqueue(f: Frame): Promise<void> {
    const body = Buffer.from(JSON.stringify(f));
    const frame = Buffer.allocUnsafe(8 + body.length);
    frame.writeUInt32BE(body.length, 0);
    frame.writeUInt32BE(crc32c(body), 4);
    body.copy(frame, 8);
    return new Promise((resolve, reject) => {
      this.queue.push({ frame, apply: () => this.applyFrame(f), resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flushLoop());
      }
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const round = this.queue;
        this.queue = [];
        const at = this.size;
        try {
          const bufs = round.map((r) => r.frame);
          let n = 0;
          for (const b of bufs) n += b.length;
          // Synchronous: a page-cache write is cheaper than a thread-pool hop; only the fdatasync goes there.
          const written = fs.writevSync(this.fd, bufs, at);
          if (written !== n) throw new Error(`short write to offsets log (${written} of ${n})`);
          await fdatasync(this.fd);
          this.size = at + n;
        } catch (err) {
          fs.ftruncateSync(this.fd, at);
          for (const r of round) r.reject(err as Error);
          continue;
        }
        for (const r of round) {
          r.apply();
          r.resolve();
        }
        if (this.size > this.compactBytes) this.compact();
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Folds the log into a snapshot; runs between flush rounds, so no commit is in flight. */
  private compact(): void {
    const snap: Record<string, OffsetEntry[]> = {};
    for (const [g, m] of this.groups) snap[g] = [...m.values()];
    writeFileAtomicSync(this.snapshotPath, JSON.stringify(snap));
    fs.ftruncateSync(this.fd, 0);
    fs.fsyncSync(this.fd);
    this.size = 0;
    this.log.info({ groups: this.groups.size }, 'compacted committed offsets');
  }

  async close(): Promise<void> {
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
