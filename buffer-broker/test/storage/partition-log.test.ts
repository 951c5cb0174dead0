import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Clock, appendValues, freshDir, openLogs, readAll } from '../support/log-fixture.ts';
import type { LogManager } from '../../src/storage/log-manager.ts';

const open: LogManager[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) await m.close().catch(() => undefined);
});
function track(m: LogManager): LogManager {
  open.push(m);
  return m;
}

describe('PartitionLog', () => {
  it('assigns contiguous offsets and reads back what was appended, in order', async () => {
    const clock = new Clock();
    const logs = track(openLogs(freshDir(), clock));
    const t = logs.createTopic('orders', 3);
    const p = t.partitions[1];
    const bases = await Promise.all([appendValues(logs, p, ['a', 'b']), appendValues(logs, p, ['c']), appendValues(logs, p, ['d', 'e', 'f'])]);
    expect(bases).toEqual([0, 2, 3]);
    expect(p.highWatermark).toBe(6);
    expect(await readAll(p)).toEqual(['a', 'b', 'c', 'd', 'e', 'f'].map((value, offset) => ({ offset, value })));
    // Reading from the middle of a batch returns that whole batch (clients drop the records below).
    const mid = await p.read(4, 1024);
    expect(mid.data).not.toBeNull();
    expect(await readAll(p, 4)).toEqual([
      { offset: 4, value: 'e' },
      { offset: 5, value: 'f' },
    ]);
    expect((await p.read(7, 1024)).errorCode).toBe('OFFSET_OUT_OF_RANGE');
    expect((await p.read(6, 1024)).data).toBeNull();
  });

  it('rolls segments by size and by age, and reads across them', async () => {
    const clock = new Clock();
    const logs = track(openLogs(freshDir(), clock, { segmentBytes: 2048 }));
    const p = logs.createTopic('roll', 1).partitions[0];
    const big = 'x'.repeat(400);
    for (let i = 0; i < 20; i++) await appendValues(logs, p, [`${i}-${big}`]);
    expect(p.segments.length).toBeGreaterThan(3);
    const before = p.segments.length;
    clock.advance(3600_000);
    await appendValues(logs, p, ['after-an-hour']);
    expect(p.segments.length).toBe(before + 1);
    const all = await readAll(p);
    expect(all.map((r) => r.offset)).toEqual([...Array(21).keys()]);
    expect(all[20].value).toBe('after-an-hour');
    const names = fs.readdirSync(p.dir).filter((f) => f.endsWith('.log')).sort();
    expect(names[0]).toBe('00000000000000000000.log');
    for (const s of p.segments) expect(fs.existsSync(path.join(p.dir, `${String(s.baseOffset).padStart(20, '0')}.index`)) || s === p.activeSegment).toBe(true);
  });

  it('deletes whole old segments by time and by size, never the active one', async () => {
    const clock = new Clock();
    const logs = track(openLogs(freshDir(), clock, { segmentBytes: 1024, segmentMs: 10_000, retentionMs: 10_000, retentionBytes: -1 }));
    const p = logs.createTopic('ret', 1).partitions[0];
    for (let i = 0; i < 10; i++) await appendValues(logs, p, ['y'.repeat(600)], clock.ms);
    const segs = p.segments.length;
    expect(segs).toBeGreaterThan(5);
    expect(logs.enforceRetention()).toBe(0);
    clock.advance(20_000);
    await appendValues(logs, p, ['fresh'], clock.ms);
    logs.enforceRetention();
    expect(p.segments.length).toBe(1);
    expect(p.logStartOffset).toBe(10);
    expect(await readAll(p)).toEqual([{ offset: 10, value: 'fresh' }]);
    expect((await p.read(0, 1024)).errorCode).toBe('OFFSET_OUT_OF_RANGE');

    const sized = logs.createTopic('ret-size', 1).partitions[0];
    logs['opts'].retentionMs = -1;
    logs['opts'].retentionBytes = 3000;
    for (let i = 0; i < 12; i++) await appendValues(logs, sized, ['z'.repeat(600)], clock.ms);
    logs.enforceRetention();
    expect(sized.sizeBytes).toBeLessThanOrEqual(3000 + 1024);
    expect(sized.logStartOffset).toBeGreaterThan(0);
    const left = await readAll(sized);
    expect(left[left.length - 1].offset).toBe(11);
  });

  it('finds offsets by timestamp through the time index, record by record', async () => {
    const clock = new Clock();
    const logs = track(openLogs(freshDir(), clock, { segmentBytes: 4096 }));
    const p = logs.createTopic('time', 1).partitions[0];
    const t0 = 1_000_000;
    for (let i = 0; i < 50; i++) await appendValues(logs, p, [`a${i}`, `b${i}`], t0 + i * 1000);
    expect(await p.offsetForTimestamp(t0)).toEqual({ offset: 0, timestamp: t0 });
    expect(await p.offsetForTimestamp(t0 + 10_500)).toEqual({ offset: 22, timestamp: t0 + 11_000 });
    expect(await p.offsetForTimestamp(t0 + 49_000)).toEqual({ offset: 98, timestamp: t0 + 49_000 });
    expect(await p.offsetForTimestamp(t0 + 50_000)).toBeNull();
  });

  it('reopens after a clean close without rescanning and keeps every record', async () => {
    const clock = new Clock();
    const dir = freshDir();
    let logs = openLogs(dir, clock, { segmentBytes: 2048 });
    let p = logs.createTopic('reopen', 2).partitions[1];
    for (let i = 0; i < 30; i++) await appendValues(logs, p, [`v${i}`]);
    await logs.close();
    logs = track(openLogs(dir, clock, { segmentBytes: 2048 }));
    p = logs.getPartition('reopen', 1)!;
    expect(p.highWatermark).toBe(30);
    expect((await readAll(p)).map((r) => r.value)).toEqual([...Array(30).keys()].map((i) => `v${i}`));
    expect(await appendValues(logs, p, ['next'])).toBe(30);
  });

  it('recovers a segment truncated at random byte positions to a valid prefix', async () => {
    const clock = new Clock();
    for (let trial = 0; trial < 12; trial++) {
      const dir = freshDir();
      const logs = openLogs(dir, clock, { segmentBytes: 1 << 20 });
      const p = logs.createTopic('torn', 1).partitions[0];
      const values = [...Array(40).keys()].map((i) => `rec-${trial}-${i}-${'q'.repeat(i * 7)}`);
      for (let i = 0; i < values.length; i += 2) await appendValues(logs, p, values.slice(i, i + 2));
      const file = p.activeSegment.logPath;
      // Simulate a crash: no checkpoint, files as they are.
      p.closeSync();
      const size = fs.statSync(file).size;
      const cut = Math.floor(Math.random() * size);
      fs.truncateSync(file, cut);
      if (trial % 3 === 0) {
        // Also corrupt a byte after the cut point region: garbage appended past a valid prefix.
        fs.appendFileSync(file, Buffer.from('garbage-garbage-garbage-garbage-garbage-garbage-garbage-garbage-garbage'));
      }
      const again = openLogs(dir, clock);
      const q = again.getPartition('torn', 0)!;
      const got = await readAll(q);
      // A prefix of what was written, whole batches only, nothing corrupt.
      expect(got.length % 2).toBe(0);
      expect(got).toEqual(values.slice(0, got.length).map((value, offset) => ({ offset, value })));
      expect(fs.statSync(file).size).toBeLessThanOrEqual(cut);
      // The log continues at the recovered end.
      expect(await appendValues(again, q, ['after'])).toBe(got.length);
      await again.close();
    }
  });

  it('recovers from the checkpoint: intact data below it is trusted, a torn tail above it is cut', async () => {
    const clock = new Clock();
    const dir = freshDir();
    const logs = openLogs(dir, clock);
    const p = logs.createTopic('cp', 1).partitions[0];
    for (let i = 0; i < 20; i++) await appendValues(logs, p, [`c${i}`]);
    await logs.checkpoint();
    for (let i = 20; i < 30; i++) await appendValues(logs, p, [`c${i}`]);
    p.closeSync();
    const file = p.activeSegment.logPath;
    fs.truncateSync(file, fs.statSync(file).size - 5);
    const again = track(openLogs(dir, clock));
    const q = again.getPartition('cp', 0)!;
    expect(q.highWatermark).toBe(29);
    expect((await readAll(q)).map((r) => r.value)).toEqual([...Array(29).keys()].map((i) => `c${i}`));
  });

  it('checkpoints sync only what changed since the previous checkpoint', async () => {
    const clock = new Clock();
    const dir = freshDir();
    const logs = openLogs(dir, clock);
    const [p0, p1, p2] = logs.createTopic('cpd', 4).partitions;
    const big = 'x'.repeat(300); // over indexIntervalBytes (256): every batch gets an index entry
    for (let i = 0; i < 3; i++) await appendValues(logs, p0, [big], clock.ms + i);
    await appendValues(logs, p1, ['idem-0'], clock.ms, { producerId: 7, producerEpoch: 0, firstSequence: 0 });
    const cpFile = path.join(dir, 'recovery-checkpoint.json');

    // First checkpoint: the indexes of the two written partitions (.index and .timeindex each),
    // p1's producer-state snapshot and the checkpoint file; the untouched partitions cost nothing.
    expect(await logs.checkpoint()).toMatchObject({ indexFiles: 4, snapshots: 1, written: true });
    const firstIno = fs.statSync(cpFile).ino;
    // Nothing changed: nothing is synced or rewritten.
    expect(await logs.checkpoint()).toMatchObject({ indexFiles: 0, snapshots: 0, written: false });
    expect(fs.statSync(cpFile).ino).toBe(firstIno);

    // A first batch in p2 adds index entries; p1's snapshot stays, its high watermark did not move.
    await appendValues(logs, p2, ['first'], clock.ms + 10);
    expect(await logs.checkpoint()).toMatchObject({ indexFiles: 2, snapshots: 0, written: true });
    // A small batch right after adds no index entry, but moves p2's offset in the checkpoint file.
    await appendValues(logs, p2, ['second'], clock.ms + 11);
    expect(await logs.checkpoint()).toMatchObject({ indexFiles: 0, snapshots: 0, written: true });
    expect(JSON.parse(fs.readFileSync(cpFile, 'utf8'))).toMatchObject({ 'cpd/0': 3, 'cpd/1': 1, 'cpd/2': 2, 'cpd/3': 0 });
    // The idempotent producer writes again: a new snapshot.
    await appendValues(logs, p1, ['idem-1'], clock.ms, { producerId: 7, producerEpoch: 0, firstSequence: 1 });
    expect(await logs.checkpoint()).toMatchObject({ indexFiles: 0, snapshots: 1, written: true });

    // Crash and reopen: what the checkpoints recorded holds, and the producer's sequence survives.
    for (const p of [p0, p1, p2]) p.closeSync();
    const again = track(openLogs(dir, clock));
    expect((await readAll(again.getPartition('cpd', 0)!)).map((r) => r.offset)).toEqual([0, 1, 2]);
    expect((await readAll(again.getPartition('cpd', 2)!)).map((r) => r.value)).toEqual(['first', 'second']);
    const q1 = again.getPartition('cpd', 1)!;
    expect(await appendValues(again, q1, ['idem-1'], clock.ms, { producerId: 7, producerEpoch: 0, firstSequence: 1 })).toBe(1);
    // The reopened broker's first checkpoint syncs the indexes it loaded once, then nothing more.
    await again.checkpoint();
    expect(await again.checkpoint()).toMatchObject({ indexFiles: 0, snapshots: 0, written: false });
  });

  it('fails every pending append and hands out no offset twice when a write fails', async () => {
    const clock = new Clock();
    const logs = track(openLogs(freshDir(), clock));
    const p = logs.createTopic('fail', 1).partitions[0];
    await appendValues(logs, p, ['ok-0']);
    // Break the file descriptor under the log to inject EBADF on the next write.
    const seg = p.activeSegment;
    const realFd = seg.fd;
    seg.fd = 2 ** 30;
    const results = await Promise.allSettled([appendValues(logs, p, ['lost-1']), appendValues(logs, p, ['lost-2'])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    seg.fd = realFd;
    expect(p.highWatermark).toBe(1);
    expect(await appendValues(logs, p, ['ok-1'])).toBe(1);
    expect((await readAll(p)).map((r) => r.value)).toEqual(['ok-0', 'ok-1']);
  });
});
