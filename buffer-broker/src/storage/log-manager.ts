/**
 * LogManager: every topic-partition log under the data directory, group commit, recovery
 * checkpoints and retention.
 *
 * Layout:  <dataDir>/topics/<topic>/topic.json
 *          <dataDir>/topics/<topic>/<partition>/<20-digit base offset>.{log,index,timeindex}
 *          <dataDir>/recovery-checkpoint.json   { "<topic>/<partition>": offset, ... }
 *
 * Group commit: appends only queue bytes; one flush loop writes everything queued across all
 * partitions, then issues one fdatasync per touched file, then acknowledges. Appends arriving
 * during a round ride the next one, so the number of fsyncs per second stays bounded by disk
 * latency while throughput grows with concurrency.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { fdatasync, fsyncDirSync, writeFileAtomic, writeFileAtomicSync } from './fs-async.ts';
import { PartitionLog, StorageError, type AppendInput, type LogConfig } from './partition-log.ts';

export type FsyncPolicy = 'always' | 'interval';

export interface LogManagerOptions extends LogConfig {
  dataDir: string;
  defaultPartitions: number;
  /** always: acks wait for fdatasync (group commit). interval: acks after write(2), fsync every fsyncIntervalMs (weaker: loses the last interval on power loss). */
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  checkpointIntervalMs: number;
  retentionCheckIntervalMs: number;
  now?: () => number;
  log: Logger;
  onFsync?: (seconds: number, files: number) => void;
  /** Called after every recovery checkpoint with what it synced. */
  onCheckpoint?: (stats: CheckpointStats) => void;
}

/** What one recovery checkpoint wrote: only what changed since the previous one is synced. */
export interface CheckpointStats {
  seconds: number;
  /** Index files (.index, .timeindex) fdatasync'd. */
  indexFiles: number;
  /** Producer-state snapshots written. */
  snapshots: number;
  /** Whether the checkpoint file was rewritten (false: no offset in it moved). */
  written: boolean;
}

export interface Topic {
  name: string;
  partitions: PartitionLog[];
  createdAtMs: number;
}

export class TopicError extends Error {
  constructor(
    readonly code: 'INVALID_TOPIC' | 'TOPIC_ALREADY_EXISTS' | 'INVALID_PARTITIONS' | 'UNKNOWN_TOPIC',
    message: string,
  ) {
    super(message);
  }
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
export const MAX_PARTITIONS = 1024;

export function validateTopicName(name: string): string | null {
  if (!TOPIC_NAME.test(name)) return 'topic names are 1-249 characters of [a-zA-Z0-9._-]';
  if (name === '.' || name === '..') return 'topic name may not be "." or ".."';
  return null;
}

export class LogManager {
  readonly topics = new Map<string, Topic>();
  private readonly dirty = new Set<PartitionLog>();
  private flushing = false;
  private checkpointing: Promise<void> = Promise.resolve();
  /** The contents of the checkpoint file as this process last wrote it ('' before its first checkpoint). */
  private lastCheckpointJson = '';
  private idleWaiters: (() => void)[] = [];
  private readonly unsyncedFds = new Set<number>();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  readonly now: () => number;
  private readonly log: Logger;
  private readonly topicsDir: string;
  private readonly checkpointPath: string;

  constructor(private readonly opts: LogManagerOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
    this.topicsDir = path.join(opts.dataDir, 'topics');
    this.checkpointPath = path.join(opts.dataDir, 'recovery-checkpoint.json');
  }

  /** Loads every topic and recovers each partition's tail. Timers start only with startBackgroundTasks(). */
  open(): void {
    fs.mkdirSync(this.topicsDir, { recursive: true });
    const checkpoint = this.readCheckpoint();
    const started = Date.now();
    for (const name of fs.readdirSync(this.topicsDir)) {
      const dir = path.join(this.topicsDir, name);
      const metaPath = path.join(dir, 'topic.json');
      if (validateTopicName(name) !== null || !fs.existsSync(metaPath)) {
        // A half-created or half-deleted topic directory.
        this.log.warn({ dir }, 'removing incomplete topic directory');
        fs.rmSync(dir, { recursive: true, force: true });
        continue;
      }
      const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as { partitions: number; createdAtMs: number };
      const partitions: PartitionLog[] = [];
      for (let p = 0; p < meta.partitions; p++) {
        const pl = this.newPartitionLog(name, p);
        pl.open(checkpoint[`${name}/${p}`] ?? 0);
        pl.loadProducerState();
        partitions.push(pl);
      }
      this.topics.set(name, { name, partitions, createdAtMs: meta.createdAtMs });
    }
    this.log.info({ topics: this.topics.size, ms: Date.now() - started }, 'logs loaded');
  }

  startBackgroundTasks(): void {
    const every = (ms: number, fn: () => Promise<void> | void) => {
      const t = setInterval(() => {
        Promise.resolve()
          .then(fn)
          .catch((err: unknown) => this.log.error({ err }, 'background task failed'));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.checkpointIntervalMs, async () => {
      await this.checkpoint();
    });
    every(this.opts.retentionCheckIntervalMs, () => {
      this.enforceRetention();
    });
    if (this.opts.fsync === 'interval') every(this.opts.fsyncIntervalMs, () => this.syncUnsynced());
  }

  private newPartitionLog(topic: string, partition: number): PartitionLog {
    return new PartitionLog(topic, partition, path.join(this.topicsDir, topic, String(partition)), this.opts, this.now, this.log);
  }

  createTopic(name: string, partitions: number): Topic {
    const bad = validateTopicName(name);
    if (bad !== null) throw new TopicError('INVALID_TOPIC', bad);
    if (this.topics.has(name)) throw new TopicError('TOPIC_ALREADY_EXISTS', `topic ${name} already exists`);
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new TopicError('INVALID_PARTITIONS', `partitions must be 1..${MAX_PARTITIONS}`);
    }
    const dir = path.join(this.topicsDir, name);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const logs: PartitionLog[] = [];
    for (let p = 0; p < partitions; p++) {
      const pl = this.newPartitionLog(name, p);
      pl.open(0);
      logs.push(pl);
    }
    const createdAtMs = this.now();
    // topic.json is written last: a topic directory without it is incomplete and removed on start.
    writeFileAtomicSync(path.join(dir, 'topic.json'), JSON.stringify({ name, partitions, createdAtMs }));
    fsyncDirSync(this.topicsDir);
    const topic = { name, partitions: logs, createdAtMs };
    this.topics.set(name, topic);
    this.log.info({ topic: name, partitions }, 'created topic');
    return topic;
  }

  async deleteTopic(name: string): Promise<void> {
    const topic = this.topics.get(name);
    if (!topic) throw new TopicError('UNKNOWN_TOPIC', `unknown topic ${name}`);
    this.topics.delete(name);
    for (const p of topic.partitions) this.dirty.delete(p);
    await this.idle();
    const dir = path.join(this.topicsDir, name);
    fs.rmSync(path.join(dir, 'topic.json'), { force: true });
    for (const p of topic.partitions) p.deleteSync();
    fs.rmSync(dir, { recursive: true, force: true });
    fsyncDirSync(this.topicsDir);
    this.log.info({ topic: name }, 'deleted topic');
  }

  getPartition(topic: string, partition: number): PartitionLog | undefined {
    return this.topics.get(topic)?.partitions[partition];
  }

  append(log: PartitionLog, input: AppendInput): Promise<number> {
    if (this.closed) return Promise.reject(new StorageError('broker is shutting down'));
    const p = log.append(input);
    this.dirty.add(log);
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => void this.flushLoop());
    }
    return p;
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.dirty.size > 0) {
        const parts = [...this.dirty];
        this.dirty.clear();
        const rounds = await Promise.all(parts.map((p) => p.writePending()));
        const fds = [...new Set(rounds.flatMap((r) => r.fds))];
        if (this.opts.fsync === 'always' && fds.length > 0) {
          const t0 = performance.now();
          try {
            await Promise.all(fds.map((fd) => fdatasync(fd)));
          } catch (err) {
            for (const r of rounds) r.fail(err as Error);
            continue;
          }
          this.opts.onFsync?.((performance.now() - t0) / 1000, fds.length);
        } else {
          for (const fd of fds) this.unsyncedFds.add(fd);
        }
        for (const r of rounds) r.commit();
      }
    } catch (err) {
      this.log.error({ err }, 'flush loop failed');
    } finally {
      this.flushing = false;
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Resolves once nothing is queued or being written. */
  idle(): Promise<void> {
    if (!this.flushing && this.dirty.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async syncUnsynced(): Promise<void> {
    const fds = [...this.unsyncedFds];
    this.unsyncedFds.clear();
    const t0 = performance.now();
    await Promise.all(fds.map((fd) => fdatasync(fd).catch(() => undefined)));
    if (fds.length > 0) this.opts.onFsync?.((performance.now() - t0) / 1000, fds.length);
  }

  private readCheckpoint(): Record<string, number> {
    try {
      const parsed = JSON.parse(fs.readFileSync(this.checkpointPath, 'utf8')) as unknown;
      if (parsed && typeof parsed === 'object') return parsed as Record<string, number>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err }, 'unreadable recovery checkpoint; recovering every segment');
    }
    return {};
  }

  /**
   * Records, per partition, an offset below which data and indexes are durable. Checkpoints run
   * one at a time (the timer's and the one at close share the file). Only what changed since the
   * last checkpoint is synced: indexes with new entries, producer-state snapshots of partitions
   * whose high watermark moved, and the checkpoint file itself when an offset in it moved. An idle
   * broker therefore does no I/O at all at its checkpoints, and a busy one none for its idle
   * partitions (every index fdatasync used to run each interval, two per partition of every topic).
   */
  checkpoint(): Promise<CheckpointStats> {
    const run = this.checkpointing.then(() => this.checkpointOnce());
    this.checkpointing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async checkpointOnce(): Promise<CheckpointStats> {
    const t0 = performance.now();
    const points: Record<string, number> = {};
    const parts: PartitionLog[] = [];
    for (const t of this.topics.values()) for (const p of t.partitions) parts.push(p);
    const hws = parts.map((p) => p.highWatermark);
    if (this.opts.fsync === 'interval') await this.syncUnsynced();
    const indexFiles = (await Promise.all(parts.map((p) => p.syncIndexes()))).reduce((a, b) => a + b, 0);
    parts.forEach((p, i) => (points[`${p.topic}/${p.partition}`] = hws[i]));
    // A snapshot only shortens recovery (without a current one it replays more of the log), so a
    // failed write, e.g. of a partition deleted meanwhile, is logged and leaves the previous one.
    const snapshot = (p: PartitionLog, hw: number): Promise<boolean> =>
      p.snapshotProducerState(hw).catch((err: unknown) => {
        this.log.warn({ err, topic: p.topic, partition: p.partition }, 'producer-state snapshot failed; recovery replays the log from the previous one');
        return false;
      });
    const snapshots = (await Promise.all(parts.map((p, i) => (p.producerState.producers.size > 0 ? snapshot(p, hws[i]) : false)))).filter(Boolean).length;
    const json = JSON.stringify(points);
    const written = json !== this.lastCheckpointJson;
    // Off the event loop: its file and directory fsyncs took 2-25 ms on a busy machine, a stall
    // of every request each checkpoint interval.
    if (written) {
      await writeFileAtomic(this.checkpointPath, json);
      this.lastCheckpointJson = json;
    }
    const stats: CheckpointStats = { seconds: (performance.now() - t0) / 1000, indexFiles, snapshots, written };
    this.opts.onCheckpoint?.(stats);
    return stats;
  }

  enforceRetention(): number {
    let deleted = 0;
    for (const t of this.topics.values()) for (const p of t.partitions) deleted += p.enforceRetention().deletedSegments;
    return deleted;
  }

  /** Stops accepting appends, finishes the queued ones, writes a checkpoint and closes files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.idle();
    await this.checkpoint();
    for (const t of this.topics.values()) for (const p of t.partitions) p.closeSync();
  }
}
