/** Backlog admission without Redis: the shedding decision (hysteresis) and the poll's parsing. */
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { Admission, type BacklogView } from '../src/admission.ts';

const silent = pino({ enabled: false });
const noRedis = {} as unknown as Redis;

const view = (etaSeconds: number, backlog = 0, downstream = 'd1'): BacklogView => ({ downstream, backlog, etaSeconds, ratePerSecond: 10, updatedAt: 0 });

describe('Admission.apply', () => {
  it('sheds above the budget and resumes only below the resume mark (hysteresis)', () => {
    const a = new Admission(noRedis, { budgetS: 100, resumeS: 50, maxOrders: 0 }, silent);
    const steps: [number, boolean][] = [
      [0, false],
      [99, false],
      [100, false], // at the budget: not yet over it
      [101, true],
      [80, true], // between the marks: still shedding
      [50, true], // at the resume mark: not yet below it
      [49, false],
      [80, false], // between the marks again: still admitting
      [100, false],
      [1000, true],
      [0, false],
    ];
    for (const [eta, shedding] of steps) {
      a.apply([view(eta)]);
      expect(a.shedding, `eta ${eta}`).toBe(shedding);
      expect(a.etaSeconds).toBe(eta);
    }
  });

  it('decides on the worst downstream and forgets downstreams that stop publishing', () => {
    const a = new Admission(noRedis, { budgetS: 100, resumeS: 50, maxOrders: 0 }, silent);
    a.apply([view(10, 5, 'fast'), view(150, 7, 'slow')]);
    expect(a.shedding).toBe(true);
    expect(a.etaSeconds).toBe(150);
    expect(a.backlog).toBe(7);
    expect(a.views.map((v) => v.downstream)).toEqual(['fast', 'slow']);
    a.apply([view(10, 5, 'fast')]);
    expect(a.shedding).toBe(false);
    a.apply([]);
    expect(a).toMatchObject({ shedding: false, etaSeconds: 0, backlog: 0, views: [] });
  });

  it('also sheds above a backlog count, resuming below the same proportion of it', () => {
    // resume/budget = 0.5: shed above 1000 orders, resume below 500.
    const a = new Admission(noRedis, { budgetS: 100, resumeS: 50, maxOrders: 1000 }, silent);
    a.apply([view(1, 1000)]);
    expect(a.shedding).toBe(false);
    a.apply([view(1, 1001)]);
    expect(a.shedding).toBe(true);
    a.apply([view(1, 600)]);
    expect(a.shedding).toBe(true);
    a.apply([view(1, 499)]);
    expect(a.shedding).toBe(false);
    // Both conditions must be met to resume.
    a.apply([view(200, 10)]);
    expect(a.shedding).toBe(true);
    a.apply([view(60, 10)]);
    expect(a.shedding).toBe(true);
    a.apply([view(40, 10)]);
    expect(a.shedding).toBe(false);
  });

  it('asks clients to retry after 1 to 300 seconds, longer the further behind', () => {
    const a = new Admission(noRedis, { budgetS: 100, resumeS: 50, maxOrders: 0 }, silent);
    a.apply([view(101)]);
    expect(a.retryAfterSeconds()).toBe(6); // ceil((101 - 50) / 10)
    a.apply([view(55)]);
    expect(a.retryAfterSeconds()).toBe(1);
    a.apply([view(1_000_000)]);
    expect(a.retryAfterSeconds()).toBe(300);
  });
});

describe('Admission.refresh', () => {
  it('reads every published backlog hash and ignores ones without an ETA', async () => {
    const hashes: Record<string, Record<string, string>> = {
      [keys.backlog('a')]: { etaSeconds: '120', backlog: '5000', ratePerSecond: '50', updatedAt: '1700000000000' },
      [keys.backlog('b')]: { backlog: '3' },
    };
    const fake = {
      smembers: async (key: string) => (key === keys.backlogIndex() ? ['a', 'b', 'gone'] : []),
      pipeline: () => {
        const queued: string[] = [];
        const pipe = {
          hgetall: (key: string) => {
            queued.push(key);
            return pipe;
          },
          exec: async () => queued.map((k): [null, Record<string, string>] => [null, hashes[k] ?? {}]),
        };
        return pipe;
      },
    };
    const a = new Admission(fake as unknown as Redis, { budgetS: 100, resumeS: 50, maxOrders: 0 }, silent);
    await a.refresh();
    expect(a.views).toEqual([{ downstream: 'a', backlog: 5000, etaSeconds: 120, ratePerSecond: 50, updatedAt: 1700000000000 }]);
    expect(a.shedding).toBe(true);
  });
});
