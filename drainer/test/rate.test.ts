/**
 * Fleet-wide rate accuracy: one and three drainer processes share one downstream's rate limit
 * (BullMQ's global limiter in Redis). The simulator is unlimited here, so every order the drainers
 * send is received, and its ledger (bucketed by the wall-clock second of admission) is the measure.
 *
 * Window: 20 s of steady draining (the warm-up second and the partial last second excluded, a
 * backlog present throughout). 20 s × 50/s = 1000 deliveries, so one missed limiter slot per
 * second (a 2% shortfall) is visible, and the test stays bounded; a minute-long average is the
 * benchmark's job.
 *
 * Bounds that hold whatever the machine's load (a slow machine can only deliver less): the mean
 * is at most 3% above the rate, and every wall-clock second holds at most rate + burst deliveries
 * (BullMQ's limiter admits `burst` jobs per burst/rate seconds), plus a stated slack only when the
 * processes ran late: a delivery admitted at the end of one second then reaches the simulator in
 * the next (rate × the drainers' worst event-loop delay, see jitterSlack).
 *
 * At 400/s (burst 40) a BullMQ job carries 4 orders and the limiter counts jobs: the same
 * bounds hold; then a rate override down to 100/s (one order per job) makes the workers split
 * the jobs already in the window, and no second after the change holds more than 100 + burst.
 *
 * The lower bound (at most 3% below) is a performance property: the limiter starts the next
 * window only when a worker asks again, so every late wake-up of a drainer is lost for good (ten
 * windows a second at 50/s, burst 5). It is asserted when the drainers' event loops ran on time
 * during the window (p99 delay of the 10 ms monitor at most 20 ms) and the machine was not
 * saturated (at most 85% of its CPU in use: Redis, the broker and the simulator can be starved
 * while the drainers' loops still run on time; seen once in a full-suite run, a 50/s window
 * that fell to 28-38/s for its last 7 s); on an overloaded machine (other work on these two
 * cores, e.g. the rest of the suite) the test prints the figures and only requires half the rate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { waitFor } from '../../lib/src/testing/processes.ts';
import { ON_TIME_P99_MS, SATURATED_SHARE, Stack, eventLoopDelay, jitterSlack, machineLoad, makeOrders, writeDrainerConfig, type DrainerProcess, type Stats } from './support/harness.ts';

const RATE = 50;
const BURST = 5;
const MEASURE_S = 20;

const stack = new Stack();

beforeAll(async () => {
  await stack.start();
});

afterAll(async () => {
  await stack.stop();
});

/** Per-second counts over [from, to] (inclusive), missing seconds as 0. */
function countsBetween(s: Stats, from: number, to: number): number[] {
  const by = new Map(s.perSecond.map((p) => [p.second, p.count]));
  const out: number[] = [];
  for (let sec = from; sec <= to; sec++) out.push(by.get(sec) ?? 0);
  return out;
}

async function measure(processes: number, label: string): Promise<void> {
  const topic = `rate-${label}`;
  const name = `rate-${label}`;
  await stack.createTopic(topic, 12);
  const sim = await stack.simulator({ rate: 0, burst: 1 });
  const orders = makeOrders(name, Math.ceil(RATE * (MEASURE_S + 12) * 1.2));
  await stack.produce(topic, orders);
  const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: RATE, burst: BURST }]);
  const drainers: DrainerProcess[] = await Promise.all(Array.from({ length: processes }, () => stack.drainer(config)));
  try {
    // A scrape resets the drainers' event-loop delay monitors: each later read covers the time since.
    await eventLoopDelay(drainers);
    // Warm-up: all processes are running and deliveries have started.
    const first = await waitFor(async () => {
      const s = await sim.stats();
      return s.perSecond.length > 0 ? s.perSecond[0].second : undefined;
    }, { timeoutMs: 60_000, what: 'first delivery' });
    const from = Math.max(first + 2, Math.floor(Date.now() / 1000) + 1);
    const to = from + MEASURE_S - 1;
    await waitFor(() => Date.now() >= from * 1000, { timeoutMs: 5000, intervalMs: 20 });
    const warmUp = await eventLoopDelay(drainers);
    const load = machineLoad();
    await waitFor(() => Date.now() >= (to + 1) * 1000 + 200, { timeoutMs: (MEASURE_S + 10) * 1000, intervalMs: 200 });
    const s = await sim.stats();
    const window = await eventLoopDelay(drainers);
    const busy = load.busy();
    const onTime = window.p99Ms <= ON_TIME_P99_MS && (busy === null || busy <= SATURATED_SHARE);
    const slack = jitterSlack(RATE, Math.max(warmUp.maxMs, window.maxMs));
    const counts = countsBetween(s, from, to);
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    console.log(
      `rate (${label}): ${processes} drainer(s) at ${RATE}/s burst ${BURST}: mean ${mean.toFixed(2)}/s over ${counts.length} s (${(((mean - RATE) / RATE) * 100).toFixed(1)}%), ` +
        `max/s ${s.maxPerSecond}, per second ${counts.join(' ')}; drainer event-loop delay p99 ${window.p99Ms.toFixed(0)} ms, max ${Math.max(warmUp.maxMs, window.maxMs).toFixed(0)} ms` +
        (busy === null ? '' : `; machine ${(busy * 100).toFixed(0)}% busy`) +
        (slack > 0 ? `; per-second slack ${slack}` : '') +
        (onTime ? '' : ' — overloaded machine: the 3% lower bound is not asserted'),
    );
    if (mean < RATE * 0.97) {
      // Seen before the pump skipped what lies below its own commit (pump.ts, onBatch): with three
      // drainers, about 1 run in 20 had seconds of 24-44/s near the end of the window. A
      // rebalance that left a pump its partition restarted the consumer from an older commit,
      // the pump gave already delivered orders second jobs (their done marks were trimmed), and
      // each took a slot of the rate limit before the worker skipped it. What the drainers
      // logged, should a dip come back.
      // Warnings, and the group assignments.
      const warnings = drainers.flatMap((d, i) =>
        d.logs.filter((l) => Number(l.level) >= 40 || l.msg === 'pump: partitions assigned').map((l) => `  drainer ${i}: ${JSON.stringify(l)}`),
      );
      console.log(`rate (${label}): window ${new Date(from * 1000).toISOString()} .. ${new Date((to + 1) * 1000).toISOString()}`);
      console.log(`rate (${label}): below 97%; drainer warnings (last 30 of ${warnings.length}):\n${warnings.slice(-30).join('\n')}`);
    }
    // The backlog never ran dry, so the rate limit (not the supply) shaped the whole window.
    expect(s.received).toBeLessThan(orders.length);
    expect(s.maxPerSecond).toBeLessThanOrEqual(RATE + BURST + slack);
    expect(mean).toBeLessThanOrEqual(RATE * 1.03);
    expect(mean).toBeGreaterThanOrEqual(RATE * (onTime ? 0.97 : 0.5));
    expect(s.duplicates).toBe(0);
    expect(s.byStatus['200']).toBe(s.received);
  } finally {
    await Promise.all(drainers.map((d) => d.kill('SIGTERM')));
    await sim.stop();
  }
}

describe('fleet-wide rate limit', () => {
  it('one drainer delivers at the configured rate, never above rate + burst in any second', async () => {
    await measure(1, 'one');
  }, 120_000);

  it('three drainers sharing the downstream deliver at the configured rate together', async () => {
    await measure(3, 'three');
  }, 120_000);

  it('jobs of several orders (400/s) keep the bounds, and a rate cut splits the jobs already in the window', async () => {
    const rate = 400;
    const burst = 40;
    const cut = 100;
    const name = 'rate-batched';
    await stack.createTopic(name, 12);
    const sim = await stack.simulator({ rate: 0, burst: 1 });
    const orders = makeOrders(name, rate * 14 + cut * 16);
    await stack.produce(name, orders);
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic: name, rate, burst }]);
    const drainer = await stack.drainer(config);
    try {
      await eventLoopDelay([drainer]);
      const load = machineLoad();
      const first = await waitFor(async () => {
        const s = await sim.stats();
        return s.perSecond.length > 0 ? s.perSecond[0].second : undefined;
      }, { timeoutMs: 60_000, what: 'first delivery' });
      // 400/s: seconds first+4 .. first+10 (the boost settles within its first 3 s of measurement).
      const from = first + 4;
      const to = from + 6;
      await waitFor(() => Date.now() >= (to + 1) * 1000 + 200, { timeoutMs: 30_000, intervalMs: 200 });
      const before = await sim.stats();
      const delay1 = await eventLoopDelay([drainer]);
      await stack.redis.hset(keys.downstreamControl(name), 'rate', String(cut), 'updatedAt', String(Date.now()));
      const changedAt = Math.floor(Date.now() / 1000);
      // The control step runs every second: from 2 s after the write, the cut is in force everywhere.
      const from2 = changedAt + 2;
      const to2 = from2 + 7;
      await waitFor(() => Date.now() >= (to2 + 1) * 1000 + 200, { timeoutMs: 30_000, intervalMs: 200 });
      const after = await sim.stats();
      const delay2 = await eventLoopDelay([drainer]);
      const fast = countsBetween(before, from, to);
      const slow = countsBetween(after, from2, to2);
      const meanFast = fast.reduce((a, b) => a + b, 0) / fast.length;
      const meanSlow = slow.reduce((a, b) => a + b, 0) / slow.length;
      const slackFast = jitterSlack(rate, delay1.maxMs);
      const slackSlow = jitterSlack(cut, delay2.maxMs);
      const busy = load.busy();
      const onTime = delay1.p99Ms <= ON_TIME_P99_MS && delay2.p99Ms <= ON_TIME_P99_MS && (busy === null || busy <= SATURATED_SHARE);
      console.log(
        `rate (batched): ${rate}/s burst ${burst}: mean ${meanFast.toFixed(1)}/s, per second ${fast.join(' ')}; after the cut to ${cut}/s: mean ${meanSlow.toFixed(1)}/s, per second ${slow.join(' ')}; ` +
          `event-loop delay p99 ${delay1.p99Ms.toFixed(0)}/${delay2.p99Ms.toFixed(0)} ms, slack ${slackFast}/${slackSlow}` +
          (busy === null ? '' : `, machine ${(busy * 100).toFixed(0)}% busy`) +
          (onTime ? '' : ' — overloaded machine: lower bounds not asserted'),
      );
      expect(after.received).toBeLessThan(orders.length);
      expect(Math.max(...fast)).toBeLessThanOrEqual(rate + burst + slackFast);
      expect(meanFast).toBeLessThanOrEqual(rate * 1.03);
      // The lower bounds catch a limiter planned in the wrong unit (orders instead of jobs of 4:
      // a quarter of the rate), not the last percent: over 7 s one stall of the limiter (seen:
      // a second of 284 among seconds of ~400, cause not yet found) costs several percent.
      expect(meanFast).toBeGreaterThanOrEqual(rate * (onTime ? 0.8 : 0.5));
      expect(Math.max(...slow)).toBeLessThanOrEqual(cut + burst + slackSlow);
      expect(meanSlow).toBeLessThanOrEqual(cut * 1.03);
      expect(meanSlow).toBeGreaterThanOrEqual(cut * (onTime ? 0.8 : 0.5));
      expect(after.duplicates).toBe(0);
    } finally {
      await drainer.kill('SIGTERM');
      await sim.stop();
    }
  }, 120_000);
});
