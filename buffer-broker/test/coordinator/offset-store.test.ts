import { describe, expect, it } from 'vitest';
import { InMemoryOffsetStore, type CommittedOffset } from '../../src/coordinator/offset-store.ts';

const off = (topic: string, partition: number, offset: number): CommittedOffset => ({
  topic,
  partition,
  offset,
  leaderEpoch: -1,
  metadata: '',
  commitTimestampMs: 1,
});

describe('InMemoryOffsetStore', () => {
  it('stores per group and partition, last write wins', async () => {
    const s = new InMemoryOffsetStore();
    await s.put('g1', [off('t', 0, 5), off('t', 1, 7)]);
    await s.put('g1', [off('t', 0, 9)]);
    await s.put('g2', [off('t', 0, 1)]);
    expect(s.get('g1', 't', 0)?.offset).toBe(9);
    expect(s.get('g1', 't', 1)?.offset).toBe(7);
    expect(s.get('g1', 'u', 0)).toBeUndefined();
    expect(s.get('g2', 't', 0)?.offset).toBe(1);
    expect(s.list('g1').map((o) => [o.topic, o.partition, o.offset]).sort()).toEqual([
      ['t', 0, 9],
      ['t', 1, 7],
    ]);
    expect(s.groupIds().sort()).toEqual(['g1', 'g2']);
  });

  it('keeps topic names with separators apart and copies what it stores', async () => {
    const s = new InMemoryOffsetStore();
    const o = off('a:1', 2, 3);
    await s.put('g', [o, off('2:a', 1, 4)]);
    o.offset = 99;
    expect(s.get('g', 'a:1', 2)?.offset).toBe(3);
    expect(s.get('g', '2:a', 1)?.offset).toBe(4);
  });

  it('an empty put creates no group; deleteGroup drops everything', async () => {
    const s = new InMemoryOffsetStore();
    await s.put('g', []);
    expect(s.groupIds()).toEqual([]);
    await s.put('g', [off('t', 0, 1)]);
    await s.deleteGroup('g');
    expect(s.groupIds()).toEqual([]);
    expect(s.list('g')).toEqual([]);
  });
});
