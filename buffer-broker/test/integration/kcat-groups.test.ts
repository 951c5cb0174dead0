/**
 * kcat (librdkafka 2.0.2) as a balanced consumer group (`kcat -G`) and as an idempotent producer
 * against a real broker process. Records are produced with kafkajs (explicit partitions, so every
 * one of the 12 partitions holds data); group state and committed offsets are read back with the
 * kafkajs admin client, an independent implementation of DescribeGroups/OffsetFetch.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { AssignerProtocol, Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { onLines, run, startBrokerProcess, waitFor, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { fetchAll } from '../support/fetch-all.ts';

const PARTITIONS = 12;

let broker: BrokerProcess;
let admin: Admin;
let producer: Producer;

beforeAll(async () => {
  broker = await startBrokerProcess();
  const kafka = new Kafka({ clientId: 'kcat-groups-test', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
  producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
});
afterAll(async () => {
  await producer?.disconnect();
  await admin?.disconnect();
  await broker?.kill('SIGTERM');
});

/**
 * Settings for every group member: start at the beginning, auto-commit, notice rebalances quickly
 * (6 s is the broker's group.min.session.timeout.ms). The periodic commit stays at librdkafka's
 * 5 s: kcat 1.7.1 applies `-X auto.commit.interval.ms=…` to the legacy *topic* property only
 * (`-X dump` shows the global one still 5000), so these tests rely on the commits librdkafka makes
 * when partitions are revoked in a rebalance and when the consumer closes (-e or SIGTERM).
 */
const memberConf = [
  '-X', 'auto.offset.reset=earliest',
  '-X', 'enable.auto.commit=true',
  '-X', 'heartbeat.interval.ms=100',
  '-X', 'session.timeout.ms=6000',
];
/** One line per record: partition, offset, value. */
const lineFormat = ['-f', '%p\t%o\t%s\n'];

interface Consumed {
  partition: number;
  offset: number;
  value: string;
}
function parseLines(lines: string[]): Consumed[] {
  return lines.map((l) => {
    const [p, o, v] = l.split('\t');
    return { partition: Number(p), offset: Number(o), value: v };
  });
}

interface Member {
  lines: string[];
  stderr: () => string;
  exited: Promise<number | null>;
  /** SIGTERM: kcat closes the consumer (final commit, LeaveGroup) and exits 0. SIGKILL: it vanishes. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}
const members: Member[] = [];
afterEach(async () => {
  // A failed test must not leave kcat running (or holding a group) for the next one.
  for (const m of members.splice(0)) await m.stop();
});

/** A long-running `kcat -G` member, its stdout split into lines as they arrive (-u: unbuffered). */
function startMember(group: string, topic: string): Member {
  const proc = spawn('kcat', ['-b', broker.bootstrap, '-G', group, '-q', '-u', ...memberConf, ...lineFormat, topic], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const errs: string[] = [];
  onLines(proc.stdout, (line) => lines.push(line));
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => errs.push(chunk));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      const hardKill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(hardKill);
      return code;
    }
    return exited;
  };
  const member = { lines, stderr: () => errs.join(''), exited, stop };
  members.push(member);
  return member;
}

/** Produces records k{i} → v{i} for i in [from, from + count), each to partition i % 12 (acks -1); returns the values. */
async function produceSpread(topic: string, from: number, count: number): Promise<string[]> {
  const messages = Array.from({ length: count }, (_, k) => ({ key: `k${from + k}`, value: `v${from + k}`, partition: (from + k) % PARTITIONS }));
  const res = await producer.send({ topic, acks: -1, messages });
  expect(res.every((r) => r.errorCode === 0)).toBe(true);
  return messages.map((m) => m.value);
}

async function committedOffsets(groupId: string, topic: string): Promise<number[]> {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] });
  return res[0].partitions.slice().sort((a, b) => a.partition - b.partition).map((p) => Number(p.offset));
}

/** Reads a batch header field straight from every batch of a partition's first segment. */
function storedBatches(topic: string, partition: number): { producerId: bigint; producerEpoch: number; baseSequence: number; count: number }[] {
  const file = path.join(broker.dataDir, 'topics', topic, String(partition), '00000000000000000000.log');
  const data = fs.readFileSync(file);
  const out: { producerId: bigint; producerEpoch: number; baseSequence: number; count: number }[] = [];
  for (let pos = 0; pos + 61 <= data.length; pos += data.readInt32BE(pos + 8) + 12) {
    out.push({ producerId: data.readBigInt64BE(pos + 43), producerEpoch: data.readInt16BE(pos + 51), baseSequence: data.readInt32BE(pos + 53), count: data.readInt32BE(pos + 57) });
  }
  return out;
}

describe('kcat consumer groups (-G)', () => {
  it('a single member consumes every record of a 12-partition topic, commits, and a restart reads nothing', async () => {
    const topic = 'kg-single';
    const group = 'kg-single-grp';
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] });
    const values = await produceSpread(topic, 0, 360);

    // -e in -G mode: exit once every assigned partition has reached its end; the close commits.
    const args = ['-b', broker.bootstrap, '-G', group, '-e', '-q', ...memberConf, ...lineFormat, topic];
    const r = await run('kcat', args, { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    const got = parseLines(r.stdout.toString().split('\n').filter((l) => l !== ''));
    expect(got.map((c) => c.value).sort()).toEqual(values.slice().sort());
    expect(new Set(got.map((c) => c.partition)).size).toBe(PARTITIONS);
    // Records keep their partition and offset: v{i} is at partition i % 12, offset floor(i / 12).
    for (const c of got) {
      const i = Number(c.value.slice(1));
      expect([c.partition, c.offset]).toEqual([i % PARTITIONS, Math.floor(i / PARTITIONS)]);
    }

    expect(await committedOffsets(group, topic)).toEqual(Array(PARTITIONS).fill(30));
    const again = await run('kcat', args, { timeoutMs: 20_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.toString()).toBe('');
  });

  it('two concurrent members split the partitions and together consume every record exactly once', async () => {
    const topic = 'kg-pair';
    const group = 'kg-pair-grp';
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] });
    // Half before the members start (consumed across the join/rebalance), half once the group is stable.
    const before = await produceSpread(topic, 0, 240);
    const a = startMember(group, topic);
    const b = startMember(group, topic);

    const stable = await waitFor(
      async () => {
        const g = (await admin.describeGroups([group])).groups[0];
        return g.state === 'Stable' && g.members.length === 2 && g.members.every((m) => m.memberAssignment.length > 0) ? g : undefined;
      },
      { timeoutMs: 20_000, what: `group ${group} to be Stable with 2 members` },
    );
    expect(stable.protocolType).toBe('consumer');
    expect(['range', 'roundrobin']).toContain(stable.protocol);
    const assigned = stable.members.map((m) => {
      const decoded = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
      return (decoded?.assignment[topic] ?? []).slice().sort((x, y) => x - y);
    });
    // Both members hold partitions; together they hold each partition once.
    expect(assigned.map((p) => p.length)).toEqual([6, 6]);
    expect(assigned.flat().sort((x, y) => x - y)).toEqual([...Array(PARTITIONS).keys()]);
    expect((await admin.listGroups()).groups).toContainEqual({ groupId: group, protocolType: 'consumer' });

    const after = await produceSpread(topic, 240, 240);
    const all = [...before, ...after];
    await waitFor(() => a.lines.length + b.lines.length >= all.length, {
      timeoutMs: 20_000,
      what: `${all.length} records (have ${a.lines.length}+${b.lines.length})`,
    });
    expect(await a.stop(), a.stderr()).toBe(0);
    expect(await b.stop(), b.stderr()).toBe(0);

    const gotA = parseLines(a.lines);
    const gotB = parseLines(b.lines);
    expect(gotA.length).toBeGreaterThan(0);
    expect(gotB.length).toBeGreaterThan(0);
    const union = [...gotA, ...gotB].map((c) => c.value);
    const dupes = union.filter((v, i) => union.indexOf(v) !== i);
    expect(dupes).toEqual([]);
    expect(union.slice().sort()).toEqual(all.slice().sort());
    // After the rebalance each member reads only its own partitions.
    const late = (got: Consumed[]) => new Set(got.filter((c) => Number(c.value.slice(1)) >= 240).map((c) => c.partition));
    const lateA = late(gotA);
    for (const p of late(gotB)) expect(lateA.has(p)).toBe(false);

    // The members committed everything they consumed, and left the group on close.
    expect(await committedOffsets(group, topic)).toEqual(Array(PARTITIONS).fill(40));
    const done = (await admin.describeGroups([group])).groups[0];
    expect([done.state, done.members.length]).toEqual(['Empty', 0]);
  });

  it('expires a SIGKILLed member after session.timeout.ms and its partitions move to the survivor', async () => {
    const topic = 'kg-expire';
    const group = 'kg-expire-grp';
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] });
    const before = await produceSpread(topic, 0, 120);
    const victim = startMember(group, topic);
    const survivor = startMember(group, topic);
    await waitFor(
      async () => {
        const g = (await admin.describeGroups([group])).groups[0];
        return g.state === 'Stable' && g.members.length === 2 && g.members.every((m) => m.memberAssignment.length > 0);
      },
      { timeoutMs: 20_000, what: `group ${group} to be Stable with 2 members` },
    );
    await waitFor(() => victim.lines.length + survivor.lines.length >= before.length, { what: 'the first records' });

    // No LeaveGroup: only the broker's session timer (6 s) can take the victim out of the group.
    const killedAt = Date.now();
    expect(await victim.stop('SIGKILL')).toBe(null);
    const after = await produceSpread(topic, 120, 120);
    await waitFor(() => after.every((v) => survivor.lines.some((l) => l.endsWith(`\t${v}`))), {
      timeoutMs: 20_000,
      what: 'the survivor to read the records produced after the kill',
    });
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(5_000);
    const g = (await admin.describeGroups([group])).groups[0];
    expect([g.state, g.members.length]).toEqual(['Stable', 1]);
    expect(AssignerProtocol.MemberAssignment.decode(g.members[0].memberAssignment)?.assignment[topic]?.length).toBe(PARTITIONS);
    expect(await survivor.stop(), survivor.stderr()).toBe(0);

    // At least once: records the victim read but never committed are read again by the survivor,
    // nothing is lost, and the survivor's final commit covers every partition.
    const union = new Set([...parseLines(victim.lines), ...parseLines(survivor.lines)].map((c) => c.value));
    expect([...union].sort()).toEqual([...before, ...after].sort());
    expect(new Set(parseLines(survivor.lines).map((c) => c.partition)).size).toBe(PARTITIONS);
    expect(await committedOffsets(group, topic)).toEqual(Array(PARTITIONS).fill(20));
  });

  it('lists the broker, topics and partition leaders (-L -J)', async () => {
    const topic = 'kg-meta';
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }, { topic: 'kg-meta-b', numPartitions: 1 }] });
    const r = await run('kcat', ['-b', broker.bootstrap, '-L', '-J'], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    const md = JSON.parse(r.stdout.toString()) as {
      brokers: { id: number; name: string }[];
      topics: { topic: string; partitions: { partition: number; leader: number; replicas: { id: number }[]; isrs: { id: number }[] }[] }[];
    };
    expect(md.brokers).toEqual([{ id: 0, name: broker.bootstrap }]);
    const t = md.topics.find((x) => x.topic === topic);
    expect(t?.partitions.map((p) => [p.partition, p.leader, p.replicas.map((x) => x.id), p.isrs.map((x) => x.id)])).toEqual([
      [0, 0, [0], [0]],
      [1, 0, [0], [0]],
      [2, 0, [0], [0]],
    ]);
    expect(md.topics.find((x) => x.topic === 'kg-meta-b')?.partitions.map((p) => p.partition)).toEqual([0]);

    const one = await run('kcat', ['-b', broker.bootstrap, '-L', '-t', topic], { timeoutMs: 20_000 });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.toString()).toContain(`broker 0 at ${broker.bootstrap} (controller)`);
    expect(one.stdout.toString()).toContain(`topic "${topic}" with 3 partitions:`);
  });
});

describe('kcat idempotent producer', () => {
  it('produces with enable.idempotence=true; every record reads back once, batches carry a producer id and contiguous sequences', async () => {
    const topic = 'kg-idem';
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] });
    const lines = Array.from({ length: 600 }, (_, i) => `key-${i}:idem-${i}`);
    // linger.ms=0 and a small batch size so each partition gets several batches (several sequences).
    const r = await run('kcat', ['-b', broker.bootstrap, '-P', '-t', topic, '-K', ':', '-X', 'enable.idempotence=true', '-X', 'linger.ms=0', '-X', 'batch.num.messages=10'], {
      input: `${lines.join('\n')}\n`,
      timeoutMs: 20_000,
    });
    expect(r.code, r.stderr).toBe(0);

    const got: string[] = [];
    const producerIds = new Set<bigint>();
    let batches = 0;
    for (let p = 0; p < PARTITIONS; p++) {
      const records = await fetchAll(broker.port, topic, p);
      expect(records.map((x) => Number(x.offset))).toEqual(records.map((_, i) => i));
      got.push(...records.map((x) => `${x.key?.toString()}:${x.value?.toString()}`));
      let seq = 0;
      for (const batch of storedBatches(topic, p)) {
        producerIds.add(batch.producerId);
        batches++;
        expect(batch.producerEpoch).toBe(0);
        expect(batch.baseSequence).toBe(seq);
        seq += batch.count;
      }
      expect(seq).toBe(records.length);
    }
    expect(got.filter((v, i) => got.indexOf(v) !== i)).toEqual([]);
    expect(got.slice().sort()).toEqual(lines.slice().sort());
    expect(batches).toBeGreaterThan(PARTITIONS);
    // One producer id (from InitProducerId) on every batch, never -1 (non-idempotent).
    expect(producerIds.size).toBe(1);
    expect([...producerIds][0]).toBeGreaterThanOrEqual(0n);
  });
});
