/**
 * End-to-end phases: produce while a 3-member consumer group consumes, for Spillway (kcat ->
 * broker -> kafkajs group), Redis Streams (ioredis XADD pipelines -> XREADGROUP + XACK) and NATS
 * JetStream (async publishes -> durable pull consumer). One runner, one adapter per system, so
 * every system gets the same pacing, the same stamping, the same consumer processes and the same
 * checks.
 *
 * - Each record carries its send time (records.ts, stamped when it is handed to the client
 *   library); the consumer subtracts it from the time the record reached the application, so
 *   latency is produce-to-consume, queueing included.
 * - Full speed: the producer sends chunks as fast as the system accepts them. Half speed: a
 *   paced producer sends whatever is due at `rate` records/s (chunks of at most `maxChunk`), rate
 *   being half the end-to-end rate of the full-speed run just before.
 * - produce rate = records / (first send -> last ack); end-to-end rate = records / (first send
 *   -> last record consumed), i.e. the rate at which records got through the whole pipe.
 * - CPU of the server, of the consumer processes and of the bench (the producer for Redis,
 *   JetStream and Spillway's wire producer; with kcat only the pipe writer, kcat being a process
 *   of its own) is reported,
 *   with how busy the machine was, so a client-bound figure shows as such.
 */
import { cpuMark, cpuUse } from './cpu.ts';
import { ConsumerGroupFleet, type GroupResult } from './group-fleet.ts';
import type { LatencyHistogram } from './histogram.ts';
import type { GroupTask } from './group-protocol.ts';
import { BenchError, withTimeout, type Cleanup } from './procs.ts';
import { nowUs, type ReadBackSummary } from './records.ts';
import { throughput, type Throughput } from './report.ts';

export interface E2eProducer {
  /** Sends records [start, start + n), each stamped with the time it is handed over; resolves once acknowledged. */
  send(start: number, n: number): Promise<void>;
  /** Resolves once everything sent is acknowledged (kcat: flushed and exited). */
  finish(): Promise<void>;
  /** Makes sure everything sent so far is on its way without ending the stream (kcat, see e2e-systems.ts). */
  flush?(): Promise<void>;
  close(): Promise<void>;
  /** CPU time (ms) of a producing process other than the bench (kcat), up to now or its exit. */
  cpuMs?(): number;
}

export interface E2eSetup {
  task: Omit<GroupTask, 'members' | 'records' | 'warmup'>;
  producer: E2eProducer;
  serverPid: number;
  /** Largest chunk the producer sends at once (a pipeline, a publish window, a pipe write). */
  maxChunk: number;
  /** Partitions the kafka group must have covered before the run starts (0 otherwise). */
  partitions: number;
  teardown(): Promise<void>;
}

export interface E2eOptions {
  label: string;
  records: number;
  /** null = full speed. */
  ratePerSec: number | null;
  members: number;
  consumerProcesses: number;
  /**
   * Warm-up records (indices [records, records + warmup)): produced at the run's own pace through
   * the same producer into the same topic or stream once the group has started, and consumed by
   * the same members, before the clock starts (see group-worker.ts); 0 = none.
   */
  warmup: number;
  timeoutMs: number;
  cleanup: Cleanup;
  /** Called right before the first send and right after the last record was consumed. */
  window?: { start(): Promise<void>; end(): Promise<void> };
}

export interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  samples: number;
  negative: number;
}

function summary(h: LatencyHistogram): LatencySummary {
  return { p50Ms: h.quantileMs(0.5), p99Ms: h.quantileMs(0.99), maxMs: h.maxUs / 1000, meanMs: h.count > 0 ? h.sumUs / h.count / 1000 : Number.NaN, samples: h.count, negative: h.negative };
}

export interface E2eRun {
  label: string;
  records: number;
  targetRatePerSec: number | null;
  produce: Throughput;
  endToEnd: Throughput;
  latency: LatencySummary;
  /** Spillway: the same latency split at the record's CreateTime (the producing client's clock, ms resolution). */
  latencySplit?: { toClient: LatencySummary; clientToConsumer: LatencySummary };
  check: ReadBackSummary;
  deliveries: number;
  members: GroupResult['members'];
  /** From starting the consumer processes until every member was ready (kafka: the group had settled). */
  groupStartMs: number;
  /** The warm-up: from its first send until its last record was consumed. */
  warmupMs: number;
  /** producerCores: kcat's for Spillway; the bench process's for Redis and JetStream (it is their producer). */
  cpu: { serverCores: number; serverCpuMs: number; producerCores: number; consumerCores: number; benchCores: number; machineBusyFraction: number; machineStealFraction: number };
  /** A full-speed run made several times (bench/broker.ts E2eSeries): every pass's end-to-end rate; this run is the median pass. */
  passesPerSec?: number[];
  /** A half-speed run made several times (bench/broker.ts E2eSeries): every pass's p99; this run is the pass with the median p99. */
  passesP99Ms?: number[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends records [from, from + records) in chunks, unpaced (rate null) or at `rate` records/s. */
async function pace(producer: E2eProducer, from: number, records: number, rate: number | null, maxChunk: number): Promise<void> {
  const t0 = performance.now();
  let sent = 0;
  while (sent < records) {
    let n = Math.min(maxChunk, records - sent);
    if (rate !== null) {
      const elapsedMs = performance.now() - t0;
      const due = Math.min(records, Math.floor((rate * elapsedMs) / 1000)) - sent;
      if (due <= 0) {
        await sleep(Math.max(1, ((sent + 1) * 1000) / rate - elapsedMs));
        continue;
      }
      n = Math.min(n, due);
    }
    await producer.send(from + sent, n);
    sent += n;
  }
}

export async function runEndToEnd(o: E2eOptions, setup: () => Promise<E2eSetup>): Promise<E2eRun> {
  const s = await setup();
  try {
    const members = Array.from({ length: o.members }, (_, i) => `member-${i + 1}`);
    const f0 = performance.now();
    const fleet = await ConsumerGroupFleet.start({ task: { ...s.task, records: o.records, warmup: o.warmup }, members, processes: o.consumerProcesses, partitions: s.partitions, cleanup: o.cleanup, timeoutMs: 60_000 });
    const groupStartMs = performance.now() - f0;
    const w0 = performance.now();
    if (o.warmup > 0) {
      // At the run's own pace, so the consumers start the run in the state they run it in.
      const warming = pace(s.producer, o.records, o.warmup, o.ratePerSec, s.maxChunk).then(() => s.producer.flush?.());
      await withTimeout(Promise.all([warming, fleet.allWarmed(o.warmup, 30_000)]), o.timeoutMs, `${o.label}: warm-up`);
    }
    const warmupMs = performance.now() - w0;
    await o.window?.start();
    const c0 = cpuMark(s.serverPid);
    const p0 = s.producer.cpuMs?.() ?? 0;
    fleet.go();
    const startUs = nowUs();
    const t0 = performance.now();
    const producing = pace(s.producer, 0, o.records, o.ratePerSec, s.maxChunk).then(async () => {
      await s.producer.finish();
      return performance.now() - t0;
    });
    producing.catch(() => undefined); // awaited below, raced with the consumers' failures
    const produceMs = await withTimeout(Promise.race([producing, fleet.allConsumed().then(() => producing)]), o.timeoutMs, `${o.label}: produce`);
    // Everything is acknowledged now: a record still missing after 30 s without progress is lost.
    await withTimeout(fleet.allConsumed(30_000), Math.max(1000, o.timeoutMs - (performance.now() - t0)), `${o.label}: consume`);
    const wallMs = performance.now() - t0;
    const c1 = cpuMark(s.serverPid);
    const producerCpuMs = s.producer.cpuMs ? s.producer.cpuMs() - p0 : undefined;
    await o.window?.end();
    const g = await fleet.finish(30_000);
    if (g.lastUs <= startUs) throw new BenchError('E2E', `${o.label}: no record consumed`);
    const cpu = cpuUse(c0, c1, wallMs);
    return {
      label: o.label,
      records: o.records,
      targetRatePerSec: o.ratePerSec,
      produce: throughput(o.records, produceMs),
      endToEnd: throughput(o.records, (g.lastUs - startUs) / 1000),
      latency: summary(g.histogram),
      ...(g.split ? { latencySplit: { toClient: summary(g.split.toClient), clientToConsumer: summary(g.split.clientToConsumer) } } : {}),
      check: g.check,
      deliveries: g.deliveries,
      members: g.members,
      groupStartMs,
      warmupMs,
      // The consumers' CPU is counted from `go` to `stop` (a little past the window).
      cpu: {
        serverCores: cpu.brokerCores,
        serverCpuMs: cpu.brokerCpuMs,
        producerCores: producerCpuMs === undefined ? cpu.benchCores : producerCpuMs / wallMs,
        consumerCores: g.cpuMs / wallMs,
        benchCores: cpu.benchCores,
        machineBusyFraction: cpu.machineBusyFraction,
        machineStealFraction: cpu.machineStealFraction,
      },
    };
  } finally {
    await s.producer.close();
    await s.teardown();
  }
}
