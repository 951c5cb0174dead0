/**
 * The consuming side of an end-to-end phase: starts the group's members in `processes` child
 * processes (group-worker.ts), waits until they are ready (for kafka: until the group has settled
 * on one assignment covering every partition exactly once), tracks their progress while the bench
 * produces the warm-up and then the measured records, stops them once every record was consumed, and merges what they report: the latency
 * histogram, the seen-bitmaps (each record exactly once across the whole group) and CPU time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LatencyHistogram } from './histogram.ts';
import { groupWorkerMessage, type GroupTask, type GroupWorkerMessage } from './group-protocol.ts';
import { BenchError, cpuProfFlags, stopChild, withTimeout, type Cleanup } from './procs.ts';
import type { ReadBackSummary } from './records.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORKER = path.join(HERE, 'group-worker.ts');

type Done = Extract<GroupWorkerMessage, { type: 'done' }>;

class GroupWorker {
  readonly child: ChildProcess;
  consumed = 0;
  warmed = 0;
  ready = false;
  done: Done | undefined;
  error: string | undefined;
  exited = false;
  stderr = '';
  /** Latest assignment per member (kafka). */
  readonly assignments = new Map<string, number[]>();
  private readonly waiters: (() => void)[] = [];

  constructor(task: GroupTask, cleanup: Cleanup) {
    const prof = cpuProfFlags(process.env.BENCH_WORKER_PROF);
    const flags = (process.env.BENCH_CONSUMER_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
    this.child = spawn(process.execPath, [...flags, ...prof, '--import', 'tsx', WORKER, JSON.stringify(task)], { cwd: path.resolve(HERE, '..', '..'), stdio: ['pipe', 'pipe', 'pipe'] });
    cleanup.add(`${task.system} consumer worker`, async () => {
      await stopChild(this.child, 5_000);
    });
    this.child.stderr?.on('data', (c: Buffer) => (this.stderr += c.toString()));
    if (!this.child.stdout) throw new BenchError('GROUP_WORKER', 'worker has no stdout');
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.onLine(line));
    this.child.once('close', () => {
      this.exited = true;
      this.wake();
    });
  }

  private onLine(line: string): void {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      json = undefined;
    }
    const parsed = groupWorkerMessage.safeParse(json);
    if (!parsed.success) {
      return;
    }
    const m = parsed.data;
    if (m.type === 'ready') this.ready = true;
    else if (m.type === 'joined') this.assignments.set(m.member, m.partitions);
    else if (m.type === 'progress') {
      this.consumed = m.consumed;
      this.warmed = m.warmed;
    }
    else if (m.type === 'done') this.done = m;
    else this.error = m.message;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves on the next message or exit; throws if the worker failed. */
  async changed(): Promise<void> {
    this.raise();
    await new Promise<void>((r) => this.waiters.push(r));
    this.raise();
  }

  raise(): void {
    if (this.error) throw new BenchError('GROUP_WORKER', `consumer worker failed: ${this.error}`);
    if (this.exited && !this.done) throw new BenchError('GROUP_WORKER', `consumer worker exited (${this.child.exitCode ?? this.child.signalCode}); stderr:\n${this.stderr.slice(0, 4000)}`);
  }

  say(word: string): void {
    this.child.stdin?.write(`${word}\n`);
  }
}

export interface GroupResult {
  consumed: number;
  deliveries: number;
  /** Wall-clock µs of the first and last consumption, over all members. */
  firstUs: number;
  lastUs: number;
  histogram: LatencyHistogram;
  /** kafka: the latency split at the record's CreateTime (see group-protocol.ts). */
  split?: { toClient: LatencyHistogram; clientToConsumer: LatencyHistogram };
  check: ReadBackSummary;
  /** CPU time of the consumer processes between go and stop. */
  cpuMs: number;
  members: { member: string; consumed: number; deliveries: number }[];
}

export class ConsumerGroupFleet {
  private constructor(
    private readonly workers: GroupWorker[],
    private readonly records: number,
  ) {}

  /**
   * Starts `members` members spread over `processes` processes and waits until they are ready.
   * `partitions` (kafka): the group must have settled on an assignment covering them all.
   */
  static async start(o: { task: Omit<GroupTask, 'members'>; members: string[]; processes: number; partitions: number; cleanup: Cleanup; timeoutMs: number }): Promise<ConsumerGroupFleet> {
    const perProcess: string[][] = Array.from({ length: o.processes }, () => []);
    o.members.forEach((m, i) => perProcess[i % o.processes].push(m));
    const workers = perProcess.filter((ms) => ms.length > 0).map((members) => new GroupWorker({ ...o.task, members }, o.cleanup));
    const fleet = new ConsumerGroupFleet(workers, o.task.records);
    const settled = () => {
      if (!workers.every((w) => w.ready)) return false;
      if (o.task.system !== 'kafka') return true;
      const all = workers.flatMap((w) => [...w.assignments.values()]);
      const partitions = all.flat();
      return all.length === o.members.length && partitions.length === o.partitions && new Set(partitions).size === o.partitions;
    };
    await withTimeout(fleet.until(settled), o.timeoutMs, `${o.task.system} consumer group start-up`);
    return fleet;
  }

  consumed(): number {
    return this.workers.reduce((a, w) => a + w.consumed, 0);
  }

  /** Warm-up records consumed so far, over all members. */
  warmed(): number {
    return this.workers.reduce((a, w) => a + w.warmed, 0);
  }

  /** Marks the start of the measured window in every worker (their CPU is counted from here). */
  go(): void {
    for (const w of this.workers) w.say('go');
  }

  private async until(predicate: () => boolean): Promise<void> {
    for (;;) {
      for (const w of this.workers) w.raise();
      if (predicate()) return;
      await Promise.race(this.workers.map((w) => w.changed()));
    }
  }

  /**
   * Resolves once the members together have consumed every record; throws on a worker failure,
   * or (with `stallMs`) once their count has not moved for that long short of the total.
   */
  allConsumed(stallMs?: number): Promise<void> {
    return this.reach(() => this.consumed(), this.records, 'records', stallMs);
  }

  /** The same for the `warmup` warm-up records. */
  allWarmed(warmup: number, stallMs: number): Promise<void> {
    return this.reach(() => this.warmed(), warmup, 'warm-up records', stallMs);
  }

  private async reach(count: () => number, target: number, what: string, stallMs?: number): Promise<void> {
    if (stallMs === undefined) return this.until(() => count() >= target);
    let last = count();
    let lastChange = performance.now();
    for (;;) {
      for (const w of this.workers) w.raise();
      const n = count();
      if (n >= target) return;
      if (n !== last) {
        last = n;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > stallMs) {
        throw new BenchError('E2E_STALLED', `consumers stalled at ${n} of ${target} ${what} for ${stallMs} ms`);
      }
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<void>((r) => (timer = setTimeout(r, 500)));
      await Promise.race([tick, ...this.workers.map((w) => w.changed())]).finally(() => clearTimeout(timer));
    }
  }

  /** Stops every member and merges what they report. */
  async finish(timeoutMs: number): Promise<GroupResult> {
    for (const w of this.workers) w.say('stop');
    await withTimeout(
      this.until(() => this.workers.every((w) => w.done !== undefined)),
      timeoutMs,
      'consumer workers to report',
    );
    for (const w of this.workers) w.child.stdin?.end();
    await withTimeout(Promise.all(this.workers.map((w) => (w.exited ? Promise.resolve() : new Promise<void>((r) => w.child.once('close', () => r()))))), timeoutMs, 'consumer workers to exit');
    const done = this.workers.map((w) => w.done).filter((d): d is Done => d !== undefined);
    const histogram = new LatencyHistogram();
    for (const d of done) histogram.merge(d.histogram);
    let split: GroupResult['split'];
    for (const d of done) {
      if (!d.split) continue;
      split ??= { toClient: new LatencyHistogram(), clientToConsumer: new LatencyHistogram() };
      split.toClient.merge(d.split.toClient);
      split.clientToConsumer.merge(d.split.clientToConsumer);
    }
    return {
      consumed: done.reduce((a, d) => a + d.consumed, 0),
      deliveries: done.reduce((a, d) => a + d.deliveries, 0),
      firstUs: Math.min(...done.map((d) => d.firstUs).filter((t) => t > 0)),
      lastUs: Math.max(...done.map((d) => d.lastUs)),
      histogram,
      split,
      check: mergeChecks(this.records, done),
      cpuMs: done.reduce((a, d) => a + d.cpuMs, 0),
      members: done.flatMap((d) => d.members),
    };
  }
}

/** Each record exactly once across the whole group: a bit seen by two workers is a duplicate. */
function mergeChecks(expected: number, done: readonly Done[]): ReadBackSummary {
  const union = new Uint8Array(Math.ceil(expected / 8));
  let crossDuplicates = 0;
  for (const d of done) {
    const bits = Buffer.from(d.seen, 'base64');
    for (let i = 0; i < union.length; i++) {
      const b = bits[i] ?? 0;
      if (b === 0) continue;
      const both = union[i] & b;
      if (both !== 0) for (let x = both; x !== 0; x &= x - 1) crossDuplicates++;
      union[i] |= b;
    }
  }
  let present = 0;
  for (let i = 0; i < expected; i++) if ((union[i >> 3] & (1 << (i & 7))) !== 0) present++;
  const records = done.reduce((a, d) => a + d.check.records, 0);
  const duplicates = done.reduce((a, d) => a + d.check.duplicates, 0) + crossDuplicates;
  const foreign = done.reduce((a, d) => a + d.check.foreign, 0);
  const wrongSize = done.reduce((a, d) => a + d.check.wrongSize, 0);
  const missing = expected - present;
  return { records, missing, duplicates, foreign, wrongSize, ok: missing === 0 && duplicates === 0 && foreign === 0 && wrongSize === 0 && records === expected };
}
