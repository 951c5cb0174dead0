import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/storage/buffer-pool.ts';

describe('BufferPool', () => {
  it('hands out buffers of the exact length and reuses released ones of the same size class', () => {
    const pool = new BufferPool();
    const a = pool.acquire(100_000);
    expect(a.length).toBe(100_000);
    expect(a.buffer.byteLength).toBe(131_072);
    pool.release(a.subarray(0, 10)); // any view of it gives the whole buffer back
    const b = pool.acquire(70_000); // same class (64 KiB < n <= 128 KiB)
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(70_000);
    const c = pool.acquire(70_000); // the free list is empty again: a new buffer
    expect(c.buffer).not.toBe(a.buffer);
    expect(pool.stats()).toMatchObject({ reused: 1, allocated: 2, freeBytes: 0 });
  });

  it('never hands the same buffer to two holders after a double release', () => {
    const pool = new BufferPool();
    const a = pool.acquire(50_000);
    pool.release(a);
    pool.release(a);
    const b = pool.acquire(50_000);
    const c = pool.acquire(50_000);
    expect(b.buffer).toBe(a.buffer);
    expect(c.buffer).not.toBe(b.buffer);
  });

  it('does not pool small or huge reads, and ignores buffers it did not hand out', () => {
    const pool = new BufferPool();
    const small = pool.acquire(1000);
    const huge = pool.acquire(20 * 1024 * 1024);
    const foreign = Buffer.allocUnsafeSlow(65_536);
    pool.release(small);
    pool.release(huge);
    pool.release(foreign);
    expect(pool.stats()).toEqual({ reused: 0, allocated: 0, freeBytes: 0 });
    expect(pool.acquire(65_536).buffer).not.toBe(foreign.buffer);
  });

  it('keeps at most maxFreeBytes on its free lists', () => {
    const pool = new BufferPool(256 * 1024);
    const held = Array.from({ length: 5 }, () => pool.acquire(100_000)); // 128 KiB each
    for (const b of held) pool.release(b);
    expect(pool.stats().freeBytes).toBe(256 * 1024);
    const again = Array.from({ length: 3 }, () => pool.acquire(100_000));
    expect(pool.stats()).toMatchObject({ reused: 2, allocated: 6, freeBytes: 0 });
    expect(new Set(again.map((b) => b.buffer)).size).toBe(3);
  });
});
