import { afterEach, describe, expect, it } from 'vitest';
import { Clock, appendValues, freshDir, openLogs, readAll } from '../support/log-fixture.ts';
import type { LogManager } from '../../src/storage/log-manager.ts';
import { ProducerSequenceError } from '../../src/storage/partition-log.ts';

const open: LogManager[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) await m.close().catch(() => undefined);
});

const id = (producerId: number, producerEpoch: number, firstSequence: number) => ({ producerId, producerEpoch, firstSequence });

describe('idempotent producer state', () => {
  it('acknowledges a retried batch with its original offset and appends it once', async () => {
    const logs = openLogs(freshDir(), new Clock());
    open.push(logs);
    const p = logs.createTopic('idem', 1).partitions[0];
    expect(await appendValues(logs, p, ['a', 'b'], undefined, id(1000, 0, 0))).toBe(0);
    expect(await appendValues(logs, p, ['plain'])).toBe(2);
    expect(await appendValues(logs, p, ['c'], undefined, id(1000, 0, 2))).toBe(3);
    // Retries of both earlier batches, concurrently with a new one.
    const [r1, r2, r3] = await Promise.all([
      appendValues(logs, p, ['a', 'b'], undefined, id(1000, 0, 0)),
      appendValues(logs, p, ['c'], undefined, id(1000, 0, 2)),
      appendValues(logs, p, ['d'], undefined, id(1000, 0, 3)),
    ]);
    expect([r1, r2, r3]).toEqual([0, 3, 4]);
    expect((await readAll(p)).map((r) => r.value)).toEqual(['a', 'b', 'plain', 'c', 'd']);
  });

  it('answers a duplicate still in flight only once the original is durable, with the same offset', async () => {
    const logs = openLogs(freshDir(), new Clock());
    open.push(logs);
    const p = logs.createTopic('inflight', 1).partitions[0];
    const both = await Promise.all([appendValues(logs, p, ['x'], undefined, id(7, 0, 0)), appendValues(logs, p, ['x'], undefined, id(7, 0, 0))]);
    expect(both).toEqual([0, 0]);
    expect(p.highWatermark).toBe(1);
  });

  it('refuses gaps with OUT_OF_ORDER_SEQUENCE_NUMBER and old epochs with INVALID_PRODUCER_EPOCH', async () => {
    const logs = openLogs(freshDir(), new Clock());
    open.push(logs);
    const p = logs.createTopic('order', 1).partitions[0];
    await appendValues(logs, p, ['s0'], undefined, id(5, 1, 0));
    await expect(appendValues(logs, p, ['gap'], undefined, id(5, 1, 2))).rejects.toMatchObject({ code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
    await expect(appendValues(logs, p, ['old'], undefined, id(5, 0, 1))).rejects.toBeInstanceOf(ProducerSequenceError);
    await expect(appendValues(logs, p, ['old'], undefined, id(5, 0, 1))).rejects.toMatchObject({ code: 'INVALID_PRODUCER_EPOCH' });
    await expect(appendValues(logs, p, ['new-epoch-bad-seq'], undefined, id(5, 2, 4))).rejects.toMatchObject({ code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
    expect(await appendValues(logs, p, ['new-epoch'], undefined, id(5, 2, 0))).toBe(1);
    expect((await readAll(p)).map((r) => r.value)).toEqual(['s0', 'new-epoch']);
  });

  it('survives a restart: from the checkpoint snapshot plus the replayed tail, and without any snapshot', async () => {
    for (const withCheckpoint of [true, false]) {
      const dir = freshDir();
      const clock = new Clock();
      const logs = openLogs(dir, clock);
      const p = logs.createTopic('restart', 1).partitions[0];
      await appendValues(logs, p, ['r0'], undefined, id(42, 0, 0));
      if (withCheckpoint) await logs.checkpoint();
      await appendValues(logs, p, ['r1', 'r2'], undefined, id(42, 0, 1));
      // Crash: no close, no final checkpoint.
      p.closeSync();
      const again = openLogs(dir, clock);
      open.push(again);
      const q = again.getPartition('restart', 0)!;
      expect(await appendValues(again, q, ['r1', 'r2'], undefined, id(42, 0, 1))).toBe(1);
      expect(await appendValues(again, q, ['r0'], undefined, id(42, 0, 0))).toBe(0);
      await expect(appendValues(again, q, ['skip'], undefined, id(42, 0, 9))).rejects.toMatchObject({ code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' });
      expect(await appendValues(again, q, ['r3'], undefined, id(42, 0, 3))).toBe(3);
      expect((await readAll(q)).map((r) => r.value)).toEqual(['r0', 'r1', 'r2', 'r3']);
    }
  });
});
