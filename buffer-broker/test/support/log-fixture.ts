/** In-process LogManager fixture with an injected clock and a silent logger. */
import fs from 'node:fs';
import { pino } from 'pino';
import { tempDir } from '../../../lib/src/testing/processes.ts';
import { validateProducedBatch } from '../../src/protocol/record-batch.ts';
import { LogManager, type LogManagerOptions } from '../../src/storage/log-manager.ts';
import type { PartitionLog } from '../../src/storage/partition-log.ts';
import { makeBatch } from './raw-client.ts';

export const silentLog = pino({ level: 'silent' });

export class Clock {
  constructor(public ms = 1_700_000_000_000) {}
  now = () => this.ms;
  advance(ms: number) {
    this.ms += ms;
  }
}

export function openLogs(dataDir: string, clock: Clock, overrides: Partial<LogManagerOptions> = {}): LogManager {
  const m = new LogManager({
    dataDir,
    defaultPartitions: 1,
    fsync: 'always',
    fsyncIntervalMs: 100,
    checkpointIntervalMs: 60_000,
    retentionCheckIntervalMs: 60_000,
    segmentBytes: 1024 * 1024,
    segmentMs: 3600_000,
    indexIntervalBytes: 256,
    retentionMs: 72 * 3600_000,
    retentionBytes: -1,
    now: clock.now,
    log: silentLog,
    ...overrides,
  });
  m.open();
  return m;
}

export async function appendValues(
  logs: LogManager,
  log: PartitionLog,
  values: string[],
  timestamp?: number,
  idempotence?: { producerId: number; producerEpoch: number; firstSequence: number },
): Promise<number> {
  const bytes = await makeBatch(values.map((v) => ({ value: v, timestamp })), 0, idempotence);
  const v = validateProducedBatch(bytes, 1 << 30, 7);
  if (!v.ok) throw new Error(v.message);
  const h = v.batch.header;
  return logs.append(log, { bytes, lastOffsetDelta: h.lastOffsetDelta, maxTimestamp: h.maxTimestamp, baseTimestamp: h.baseTimestamp, attributes: h.attributes, producerId: h.producerId, producerEpoch: h.producerEpoch, baseSequence: h.baseSequence });
}

/** Every (offset, value) readable from `from` to HW, decoded with kafkajs's batch decoder. */
export async function readAll(log: PartitionLog, from = log.logStartOffset): Promise<{ offset: number; value: string }[]> {
  const { decodeBatches } = await import('./decode.ts');
  const out: { offset: number; value: string }[] = [];
  let offset = from;
  while (offset < log.highWatermark) {
    const r = await log.read(offset, 64 * 1024);
    if (r.errorCode !== 'NONE') throw new Error(r.errorCode);
    if (r.data === null) break;
    const recs = await decodeBatches(r.data);
    for (const rec of recs) if (rec.offset >= offset) out.push({ offset: rec.offset, value: rec.value });
    offset = recs[recs.length - 1].offset + 1;
  }
  return out;
}

export function freshDir(): string {
  const d = tempDir('log');
  fs.mkdirSync(d, { recursive: true });
  return d;
}
