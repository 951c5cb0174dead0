/**
 * One consumer process of an end-to-end phase (entry point, spawned by group-fleet.ts). It hosts
 * one or more members of a consumer group of one system, all with the same shape of work:
 * - kafka: kafkajs consumers in one group, eachBatch with auto-resolve, from the beginning of a
 *   fresh topic; offsets committed per the task's commit policy: 'async' after every batch
 *   without awaiting the answer before the next fetch (the counterpart of the XACK/acks of the
 *   other systems, which are not awaited either), 'awaited' by kafkajs's auto-commit after every
 *   batch, answer awaited, or 'interval' by hand on a timer;
 * - redis: XREADGROUP COUNT n BLOCK ms over one ioredis connection per member, each batch's
 *   XACK pipelined ahead of the next XREADGROUP (ids are acked once the batch is processed);
 * - jetstream: pull fetches of n messages from one durable consumer (explicit acks), every
 *   message of a batch acked once the batch is processed.
 * "Processing" is the same everywhere: take the consume time once per delivery (a kafkajs batch,
 * an XREADGROUP reply; per message for JetStream, whose pull hands messages over one by one as
 * they arrive), parse the record index and send stamp, mark the index seen, and add the
 * produce-to-consume latency.
 *
 * Warm-up: the records with indices [records, records + warmup) are the run's warm-up, which
 * the bench produces into the same topic or stream, through the same producer and at the run's
 * own pace, right before the measured records (e2e.ts). The members process them exactly like
 * the measured ones, into a tally of their own that is not reported, so the clock starts on
 * consumers in their running state: JavaScript optimised by V8, connections and fetch sessions
 * open, and a heap grown to its working size. A consumer in production has been running for a
 * while. Without such a warm-up a run's first second measured the process's start instead:
 * - freshly spawned JavaScript that V8 had not optimised yet (half-speed p99 57-82 ms cold,
 *   30-41 ms after a warm-up);
 * - warmed on a throwaway topic instead (the warm-up before this one), the heap still had to grow
 *   from ~40 to ~80 MB in the run's first second, until its first mark-compact. On this VM a
 *   first-touch page fault costs ~18 us (700-2,700 minor faults and up to 49 ms of system time
 *   per 100 ms then, against under 200 and 2-15 ms afterwards), which made the scavenges of that
 *   second 10-22 ms instead of 3-5 ms. 40,000-100,000 of a half-speed run's records waited over
 *   40 ms in its first 0.9 s, and none after it: that alone set the p99.
 *
 * Protocol (JSON lines on stdout, words on stdin): `ready` once every member is connected (kafka
 * members also report `joined` with their assignment after each rebalance); `progress` every
 * 100 ms (measured records consumed, warm-up records consumed); stdin `go` marks the start of the
 * measured window (CPU accounting); stdin `stop` ends consumption, then `done` carries the counts,
 * the latency histogram and the seen-bitmap.
 */
import readline from 'node:readline';
import { Kafka, logLevel, type Consumer, type EachBatchPayload } from 'kafkajs';
import { connect, type JsMsg, type NatsConnection } from 'nats';
import { SPLIT_EVERY, groupTask, type GroupTask, type GroupWorkerMessage } from './group-protocol.ts';
import { connectIoredis } from './redis-ioredis.ts';
import { LatencyHistogram, type HistogramJson } from './histogram.ts';
import { ReadBackCheck, nowUs, recordIndex, recordStampUs } from './records.ts';

function send(msg: GroupWorkerMessage): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

/** What every member of this process adds to. */
class Tally {
  readonly check: ReadBackCheck;
  readonly histogram = new LatencyHistogram();
  /** The warm-up's records (see the header): processed the same way, into these, and not reported. */
  readonly warmCheck: ReadBackCheck;
  readonly warmHistogram = new LatencyHistogram();
  warmed = 0;
  /**
   * kafka: send stamp -> record CreateTime, and CreateTime -> consumed, for one record in
   * SPLIT_EVERY (see splitDue): a diagnostic the other systems have no counterpart of, so it is
   * sampled rather than added to every record's processing.
   */
  readonly toClient = new LatencyHistogram();
  readonly clientToConsumer = new LatencyHistogram();
  consumed = 0;
  deliveries = 0;
  private splitCount = 0;
  firstUs = 0;
  lastUs = 0;
  readonly perMember = new Map<string, { consumed: number; deliveries: number }>();

  constructor(
    readonly records: number,
    readonly warmup: number,
  ) {
    this.check = new ReadBackCheck(records);
    this.warmCheck = new ReadBackCheck(warmup);
  }

  /** `count` records handed to the application at `atUs`, in `deliveries` batches (0: same batch). */
  delivery(member: string, atUs: number, count: number, deliveries = 1): void {
    if (count === 0) return;
    if (this.firstUs === 0) this.firstUs = atUs;
    this.lastUs = atUs;
    this.consumed += count;
    this.deliveries += deliveries;
    let m = this.perMember.get(member);
    if (!m) {
      m = { consumed: 0, deliveries: 0 };
      this.perMember.set(member, m);
    }
    m.consumed += count;
    m.deliveries += deliveries;
  }

  /** Whether this record's latency is split at its CreateTime (one record in SPLIT_EVERY). */
  splitDue(): boolean {
    return this.splitCount++ % SPLIT_EVERY === 0;
  }

  /**
   * One record handed to the application at `atUs`; false if it was a warm-up record (it then
   * counts towards `warmed` only). `createTimeMs`: the record's CreateTime (kafka), to split the
   * latency at the producing client.
   */
  record(value: Buffer | null | undefined, atUs: number, createTimeMs?: number): boolean {
    if (!value) {
      this.check.foreign++;
      return true;
    }
    const i = recordIndex(value, 0);
    if (i >= this.records && i < this.records + this.warmup) {
      this.warmCheck.addIndex(i - this.records, value.length);
      const stamp = recordStampUs(value, 0);
      if (stamp >= 0) this.warmHistogram.record(atUs - stamp);
      this.warmed++;
      return false;
    }
    this.check.addIndex(i, value.length);
    const stamp = recordStampUs(value, 0);
    if (stamp < 0) return true;
    this.histogram.record(atUs - stamp);
    if (createTimeMs !== undefined) {
      this.toClient.record(createTimeMs * 1000 - stamp);
      this.clientToConsumer.record(atUs - createTimeMs * 1000);
    }
    return true;
  }

  packedSeen(): string {
    const seen = this.check.seen;
    const bits = Buffer.alloc(Math.ceil(seen.length / 8));
    for (let i = 0; i < seen.length; i++) if (seen[i] === 1) bits[i >> 3] |= 1 << (i & 7);
    return bits.toString('base64');
  }
}

interface Members {
  /** Ends consumption; resolves once every member has stopped and disconnected. */
  stop(): Promise<void>;
}

async function startKafka(task: GroupTask, tally: Tally): Promise<Members> {
  const k = task.kafka;
  if (!k) throw new Error('kafka task without kafka settings');
  const kafka = new Kafka({ clientId: 'spillway-bench-group', brokers: [k.bootstrap], logLevel: logLevel.ERROR });
  const consumers: Consumer[] = [];
  const timers: NodeJS.Timeout[] = [];
  /** Each member's commit in flight (hand-committing policies), awaited before disconnecting. */
  const commits: (() => Promise<void>)[] = [];
  let stopping = false;
  for (const member of task.members) {
    // maxWaitTimeInMs only bounds an idle long poll: the broker answers as soon as data arrives (minBytes 1).
    // heartbeatInterval as the drainer has it (kafkajs's default is 3 s): members learn of the
    // start-up rebalances sooner, so the group settles sooner.
    const consumer = kafka.consumer({ groupId: k.groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: k.maxWaitMs, heartbeatInterval: 1000 });
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      send({ type: 'joined', member, partitions: e.payload.memberAssignment[k.topic] ?? [] });
    });
    await consumer.connect();
    await consumer.subscribe({ topic: k.topic, fromBeginning: true });
    // kafkajs's eachBatch auto-commit (commit 'awaited') commits after every batch and awaits the
    // answer before the member handles its next batch or fetches again. The other policies commit
    // by hand, as the drainer does, without holding up consumption: 'async' after every batch
    // (Java's commitAsync), 'interval' on a timer. Either way a member has at most one commit in
    // flight; offsets of batches handled meanwhile go in the next one, and every commit is still
    // durable (fsync'd) before the broker answers it.
    const pending = new Map<number, string>();
    let inFlight: Promise<void> | null = null;
    const commitPending = (): void => {
      if (inFlight !== null || pending.size === 0 || stopping) return;
      const offsets = [...pending].map(([partition, offset]) => ({ topic: k.topic, partition, offset }));
      pending.clear();
      inFlight = consumer.commitOffsets(offsets).then(
        () => {
          inFlight = null;
          commitPending();
        },
        (err: unknown) => {
          if (!stopping) fail(err);
        },
      );
    };
    commits.push(() => inFlight ?? Promise.resolve());
    if (k.commit === 'interval') timers.push(setInterval(commitPending, k.commitIntervalMs));
    await consumer.run({
      autoCommit: k.commit === 'awaited',
      // Batches of this many of the member's partitions are handled at once, so one batch's commit does not hold up the others.
      partitionsConsumedConcurrently: k.partitionsConcurrently,
      eachBatch: async ({ batch }: EachBatchPayload) => {
        const at = nowUs();
        let measured = 0;
        for (const m of batch.messages) if (tally.record(m.value, at, tally.splitDue() ? Number(m.timestamp) : undefined)) measured++;
        tally.delivery(member, at, measured);
        if (k.commit !== 'awaited' && batch.messages.length > 0) {
          pending.set(batch.partition, String(Number(batch.lastOffset()) + 1));
          if (k.commit === 'async') commitPending();
        }
      },
    });
    consumers.push(consumer);
  }
  return {
    stop: async () => {
      stopping = true;
      for (const t of timers) clearInterval(t);
      await Promise.all(commits.map((c) => c().catch(() => undefined)));
      await Promise.all(consumers.map((c) => c.disconnect()));
    },
  };
}

async function startRedis(task: GroupTask, tally: Tally): Promise<Members> {
  const r = task.redis;
  if (!r) throw new Error('redis task without redis settings');
  let stopping = false;
  const loops: Promise<void>[] = [];
  for (const member of task.members) {
    const redis = await connectIoredis(r.port, member);
    loops.push(
      (async () => {
        let ack: Promise<unknown> = Promise.resolve();
        try {
          while (!stopping) {
            // The previous batch's XACK goes out ahead of this read on the same connection.
            const [, reply] = await Promise.all([ack, redis.xreadgroupBuffer('GROUP', r.group, member, 'COUNT', r.count, 'BLOCK', r.blockMs, 'STREAMS', r.key, '>')]);
            ack = Promise.resolve();
            if (!reply) continue;
            const at = nowUs();
            const ids: Buffer[] = [];
            let measured = 0;
            for (const [, items] of reply) {
              for (const [id, fields] of items) {
                if (tally.record(fields?.[1], at)) measured++;
                ids.push(id);
              }
            }
            tally.delivery(member, at, measured);
            if (ids.length > 0) ack = redis.xack(r.key, r.group, ...ids);
          }
          await ack;
        } finally {
          redis.disconnect();
        }
      })(),
    );
  }
  // A failing loop must surface at once (as an error line), not at stop().
  for (const l of loops) l.catch((err: unknown) => fail(err));
  return {
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

async function startJetStream(task: GroupTask, tally: Tally): Promise<Members> {
  const j = task.jetstream;
  if (!j) throw new Error('jetstream task without jetstream settings');
  let stopping = false;
  const conns: NatsConnection[] = [];
  const loops: Promise<void>[] = [];
  for (const member of task.members) {
    const nc = await connect({ servers: `127.0.0.1:${j.port}`, name: member });
    conns.push(nc);
    const consumer = await nc.jetstream().consumers.get(j.stream, j.durable);
    loops.push(
      (async () => {
        while (!stopping) {
          const batch: JsMsg[] = [];
          let measured = 0;
          const messages = await consumer.fetch({ max_messages: j.batch, expires: j.expiresMs });
          for await (const m of messages) {
            // Messages of a pull arrive as the server sends them, so each is stamped on arrival.
            const at = nowUs();
            if (tally.record(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), at)) tally.delivery(member, at, 1, measured++ === 0 ? 1 : 0);
            batch.push(m);
            if (stopping) break;
          }
          for (const m of batch) m.ack();
        }
      })(),
    );
  }
  for (const l of loops) l.catch((err: unknown) => fail(err));
  return {
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
      await Promise.all(conns.map((nc) => nc.drain()));
    },
  };
}

function fail(err: unknown): void {
  send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
}

async function main(): Promise<void> {
  const task = groupTask.parse(JSON.parse(process.argv[2] ?? '{}'));
  const tally = new Tally(task.records, task.warmup);
  const start = { kafka: startKafka, redis: startRedis, jetstream: startJetStream }[task.system];
  const members = await start(task, tally);
  send({ type: 'ready' });
  const progress = setInterval(() => send({ type: 'progress', consumed: tally.consumed, warmed: tally.warmed }), 100);
  let cpu0 = process.cpuUsage();
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const word = line.trim();
    if (word === 'go') cpu0 = process.cpuUsage();
    if (word === 'stop') break;
  }
  rl.close();
  const cpu = process.cpuUsage(cpu0);
  clearInterval(progress);
  await members.stop();
  const s = tally.check;
  const histogram: HistogramJson = tally.histogram.toJSON();
  send({
    type: 'done',
    consumed: tally.consumed,
    deliveries: tally.deliveries,
    firstUs: tally.firstUs,
    lastUs: tally.lastUs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    histogram,
    ...(task.system === 'kafka' ? { split: { toClient: tally.toClient.toJSON(), clientToConsumer: tally.clientToConsumer.toJSON() } } : {}),
    seen: tally.packedSeen(),
    check: { records: s.records, duplicates: s.duplicates, foreign: s.foreign, wrongSize: s.wrongSize },
    members: [...tally.perMember].map(([member, m]) => ({ member, ...m })),
  });
}

main().catch(fail);
