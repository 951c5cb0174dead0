/**
 * Pushback: the downstream drops its capacity mid-drain and answers 429 + Retry-After. The
 * drainer slows down (Retry-After pauses the queue, AIMD cuts the shared rate) and settles near
 * the new capacity, counting no attempt and dead-lettering nothing; when the capacity returns,
 * AIMD creeps back to the configured rate.
 *
 * Bounds are on counts: the mean delivered rate over a settled window is at least 40% of the
 * reduced capacity (and, by the simulator's bucket, never above it), 429s in that window stay
 * within a small multiple of the deliveries, and recovery reaches 90% of the configured rate
 * within a generous deadline (AIMD adds 5% a second). Measured here: about 55-70% of the reduced
 * capacity — each 429 pauses the whole fleet for its Retry-After (whole seconds, at least 1) and
 * AIMD saws between about 0.7× and 1× of the capacity; the figures are printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { waitFor } from '../../lib/src/testing/processes.ts';
import { Stack, eventLoopDelay, jitterSlack, makeOrders, metricValue, scrape, sleep, writeDrainerConfig, type Stats } from './support/harness.ts';

const RATE = 50;
const BURST = 5;
const LOW = 20;

const stack = new Stack();

beforeAll(async () => {
  await stack.start();
});

afterAll(async () => {
  await stack.stop();
});

const status = (s: Stats, code: string) => s.byStatus[code] ?? 0;

describe('downstream pushback', () => {
  it('settles near a reduced capacity without dead letters and recovers when it returns', async () => {
    const topic = 'pushback';
    const name = 'pushback';
    await stack.createTopic(topic, 12);
    const sim = await stack.simulator({ rate: 1000, burst: 100 });
    const orders = makeOrders(name, 2500);
    await stack.produce(topic, orders);
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: RATE, burst: BURST }]);
    const drainer = await stack.drainer(config);
    // Once a second: the shared AIMD factor (for the printed trace) and the drainer's worst event-loop delay (for the slack).
    const trace: string[] = [];
    let worstDelayMs = 0;
    await eventLoopDelay([drainer]);
    const tracer = setInterval(() => {
      void stack.redis.get(keys.downstreamAimd(name)).then((f) => trace.push(Number(f ?? 1).toFixed(2)));
      void eventLoopDelay([drainer]).then(
        (d) => (worstDelayMs = Math.max(worstDelayMs, d.maxMs)),
        () => undefined,
      );
    }, 1000);
    try {
      await waitFor(async () => (await sim.stats()).received >= RATE * 2, { timeoutMs: 60_000, what: 'deliveries at full rate' });

      // Capacity drops to LOW/s: 429s start, the drainer backs off.
      await sim.control({ rate: LOW, burst: BURST });
      await sleep(8000);
      // t0 before the first snapshot and the elapsed time after the second: the ledger's interval is within settledS.
      const t0 = Date.now();
      const a = await sim.stats();
      await sleep(8000);
      const b = await sim.stats();
      const settledS = (Date.now() - t0) / 1000;
      const delivered = b.received - a.received;
      const refused = status(b, '429') - status(a, '429');
      console.log(`pushback: settled at ${(delivered / settledS).toFixed(1)}/s under a capacity of ${LOW}/s, ${refused} 429s in ${settledS.toFixed(1)} s; AIMD factor ${trace.join(' ')}`);
      expect(delivered / settledS).toBeGreaterThanOrEqual(LOW * 0.4);
      // The simulator's bucket admits at most burst + rate·T in any T seconds (plus what was admitted
      // just before the first snapshot and counted after it).
      expect(delivered).toBeLessThanOrEqual(LOW * settledS + 2 * BURST);
      expect(refused).toBeLessThanOrEqual(delivered * 2);
      const factor = Number(await stack.redis.get(keys.downstreamAimd(name)));
      expect(factor).toBeLessThan(1);

      // Capacity returns: AIMD creeps back up to the configured rate.
      await sim.control({ rate: 1000, burst: 100 });
      await waitFor(
        async () => {
          const s = await sim.stats();
          const now = Math.floor(Date.now() / 1000);
          const last = s.perSecond.find((p) => p.second === now - 1);
          return last !== undefined && last.count >= RATE * 0.9;
        },
        { timeoutMs: 40_000, intervalMs: 250, what: 'delivery rate to recover' },
      );
      const c = await sim.stats(true);
      clearInterval(tracer);
      const slack = jitterSlack(RATE, worstDelayMs);
      console.log(`pushback: recovered to ${RATE * 0.9}/s or more; AIMD factor ${trace.join(' ')}; max/s ${c.maxPerSecond}, drainer event-loop delay max ${worstDelayMs.toFixed(0)} ms (per-second slack ${slack})`);
      expect(c.maxPerSecond).toBeLessThanOrEqual(RATE + BURST + slack);

      // No 429 was a failure: nothing dead-lettered, no attempt counted, no duplicates.
      expect(await stack.redis.zcard(keys.dlqIndex(name))).toBe(0);
      const attempts = await Promise.all((c.keys ?? []).map((id) => stack.redis.hget(keys.order(id), 'attempts')));
      expect(attempts.length).toBe(c.distinctKeys);
      expect(attempts.filter((a) => a !== '1')).toEqual([]);
      const m = await scrape(drainer.metricsUrl);
      expect(metricValue(m, 'spillway_drainer_deliveries_total', { downstream: name, outcome: 'dead_lettered' })).toBeNaN();
      expect(metricValue(m, 'spillway_drainer_deliveries_total', { downstream: name, outcome: 'pushback' })).toBeGreaterThan(0);
      expect(c.duplicates).toBe(0);
    } finally {
      clearInterval(tracer);
      await drainer.kill('SIGTERM');
    }
  }, 150_000);
});
