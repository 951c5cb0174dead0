import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DurableOffsetStore } from '../../src/storage/offset-store.ts';
import { freshDir, silentLog } from '../support/log-fixture.ts';

const entry = (topic: string, partition: number, offset: number) => ({ topic, partition, offset, leaderEpoch: -1, metadata: '', commitTimestampMs: 1 });

describe('DurableOffsetStore', () => {
  it('makes commits visible after fsync and restores them after a restart', async () => {
    const dir = freshDir();
    const s = new DurableOffsetStore(dir, silentLog);
    s.open();
    await Promise.all([s.put('g1', [entry('orders', 0, 10), entry('orders', 1, 20)]), s.put('g2', [entry('orders', 0, 5)])]);
    await s.put('g1', [entry('orders', 0, 11)]);
    expect(s.get('g1', 'orders', 0)?.offset).toBe(11);
    // No close: a crash right after the acknowledgement.
    const again = new DurableOffsetStore(dir, silentLog);
    again.open();
    expect(again.get('g1', 'orders', 0)?.offset).toBe(11);
    expect(again.get('g1', 'orders', 1)?.offset).toBe(20);
    expect(again.get('g2', 'orders', 0)?.offset).toBe(5);
    expect(again.groupIds().sort()).toEqual(['g1', 'g2']);
    await again.deleteGroup('g2');
    const third = new DurableOffsetStore(dir, silentLog);
    third.open();
    expect(third.hasGroup('g2')).toBe(false);
  });

  it('cuts a torn tail frame and keeps everything before it', async () => {
    const dir = freshDir();
    const s = new DurableOffsetStore(dir, silentLog);
    s.open();
    for (let i = 0; i < 10; i++) await s.put('g', [entry('t', 0, i)]);
    const file = path.join(dir, 'offsets.log');
    fs.truncateSync(file, fs.statSync(file).size - 3);
    const again = new DurableOffsetStore(dir, silentLog);
    again.open();
    expect(again.get('g', 't', 0)?.offset).toBe(8);
    await again.put('g', [entry('t', 0, 100)]);
    const third = new DurableOffsetStore(dir, silentLog);
    third.open();
    expect(third.get('g', 't', 0)?.offset).toBe(100);
  });

  it('compacts the log into a snapshot and keeps the latest values', async () => {
    const dir = freshDir();
    const s = new DurableOffsetStore(dir, silentLog, 2048);
    s.open();
    for (let i = 0; i < 200; i++) await s.put(`g${i % 3}`, [entry('t', i % 4, i)]);
    expect(fs.statSync(path.join(dir, 'offsets.log')).size).toBeLessThan(2048 + 200);
    expect(fs.existsSync(path.join(dir, 'offsets.snapshot'))).toBe(true);
    const again = new DurableOffsetStore(dir, silentLog);
    again.open();
    for (let g = 0; g < 3; g++) {
      for (let p = 0; p < 4; p++) {
        const last = [...Array(200).keys()].filter((i) => i % 3 === g && i % 4 === p).pop();
        expect(again.get(`g${g}`, 't', p)?.offset).toBe(last);
      }
    }
  });
});
