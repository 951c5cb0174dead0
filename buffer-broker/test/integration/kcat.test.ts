/** kcat (librdkafka 2.0.2, a C client) against a real broker process. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startBrokerProcess, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { brokerMetric, POOL_REUSED } from '../support/metrics.ts';

let broker: BrokerProcess;
beforeAll(async () => {
  broker = await startBrokerProcess();
});
afterAll(async () => {
  await broker?.kill('SIGTERM');
});

const kcat = (args: string[], input?: string) => run('kcat', ['-b', broker.bootstrap, ...args], { input, timeoutMs: 60_000 });

/** Reads a partition to its end and returns "key\tvalue" lines. */
async function consume(topic: string, partition: number): Promise<string[]> {
  const r = await kcat(['-C', '-t', topic, '-p', String(partition), '-o', 'beginning', '-e', '-q', '-f', '%k\t%s\n']);
  expect(r.code).toBe(0);
  return r.stdout.toString().split('\n').filter((l) => l !== '');
}

/** Compression codec bits of every batch stored in a partition's first segment. */
function storedCodecs(topic: string, partition: number): number[] {
  const file = path.join(broker.dataDir, 'topics', topic, String(partition), '00000000000000000000.log');
  const data = fs.readFileSync(file);
  const codecs: number[] = [];
  for (let pos = 0; pos + 61 <= data.length; pos += data.readInt32BE(pos + 8) + 12) codecs.push(data.readInt16BE(pos + 21) & 7);
  return codecs;
}

describe('kcat', () => {
  it('lists the broker and topics (-L)', async () => {
    await kcat(['-P', '-t', 'kcat-meta', '-p', '0'], 'x\n');
    const r = await kcat(['-L']);
    expect(r.code).toBe(0);
    const out = r.stdout.toString();
    expect(out).toContain(`broker 0 at ${broker.bootstrap} (controller)`);
    expect(out).toMatch(/topic "kcat-meta" with 12 partitions/);
  });

  it('round-trips keyed records byte for byte (-P then -C)', async () => {
    const lines = Array.from({ length: 500 }, (_, i) => `k${i % 7}\t${randomBytes(40).toString('base64')}-${i}`);
    const p = await kcat(['-P', '-t', 'kcat-rt', '-p', '3', '-K', '\t', '-X', 'acks=all'], `${lines.join('\n')}\n`);
    expect(p.code).toBe(0);
    expect(await consume('kcat-rt', 3)).toEqual(lines);
  });

  for (const codec of ['gzip', 'snappy', 'lz4', 'zstd'] as const) {
    it(`stores ${codec} batches as sent and serves them back`, async () => {
      const topic = `kcat-${codec}`;
      // Repetitive values so the codec actually shrinks the batch (librdkafka sends it uncompressed otherwise).
      const lines = Array.from({ length: 2000 }, (_, i) => `key-${i}\tvalue-${i}-${'abc'.repeat(20)}`);
      const p = await kcat(['-P', '-t', topic, '-p', '0', '-K', '\t', '-z', codec], `${lines.join('\n')}\n`);
      expect(p.code).toBe(0);
      expect(await consume(topic, 0)).toEqual(lines);
      const codes = storedCodecs(topic, 0);
      expect(codes.length).toBeGreaterThan(0);
      expect(new Set(codes)).toEqual(new Set([{ gzip: 1, snappy: 2, lz4: 3, zstd: 4 }[codec]]));
    });
  }

  it('serves concurrent readers byte for byte while fetch buffers are reused', async () => {
    // Each topic gets its own random lines; three readers per round read all three topics at
    // once with 64 KiB partition fetches, so read buffers are handed back and reused while other
    // responses are still being written. A buffer reused too early would show up here as
    // another topic's bytes (or a CRC error from librdkafka).
    const topics = ['kcat-reuse-a', 'kcat-reuse-b', 'kcat-reuse-c'];
    const input = new Map<string, string[]>();
    for (const t of topics) {
      const lines = Array.from({ length: 6000 }, (_, i) => `${t}-${i}-${randomBytes(150).toString('base64')}`);
      input.set(t, lines);
      const p = await kcat(['-P', '-t', t, '-X', 'acks=all'], `${lines.join('\n')}\n`);
      expect(p.code).toBe(0);
    }
    const reused = () => brokerMetric(broker.metricsPort, POOL_REUSED);
    const before = await reused();
    for (let round = 0; round < 2; round++) {
      const reads = await Promise.all(
        topics.map((t) => kcat(['-C', '-t', t, '-o', 'beginning', '-e', '-q', '-X', 'fetch.wait.max.ms=20', '-X', 'max.partition.fetch.bytes=65536'])),
      );
      reads.forEach((r, i) => {
        expect(r.code).toBe(0);
        expect(r.stderr).toBe('');
        const got = r.stdout.toString().split('\n').filter((l) => l !== '');
        expect(got.sort()).toEqual([...(input.get(topics[i]) as string[])].sort());
      });
    }
    expect(await reused()).toBeGreaterThan(before);
  });

  it('consumes from an offset and by timestamp', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => `v${i}`);
    await kcat(['-P', '-t', 'kcat-offsets', '-p', '0'], `${lines.join('\n')}\n`);
    const fromOffset = await kcat(['-C', '-t', 'kcat-offsets', '-p', '0', '-o', '45', '-e', '-q']);
    expect(fromOffset.stdout.toString().trim().split('\n')).toEqual(['v45', 'v46', 'v47', 'v48', 'v49']);
    const byTime = await kcat(['-C', '-t', 'kcat-offsets', '-p', '0', '-o', 's@0', '-e', '-q']);
    expect(byTime.stdout.toString().trim().split('\n')).toEqual(lines);
  });
});
