/**
 * Delivery windows and operator control. A window that pauses now (computed from the current
 * UTC time) stops deliveries while intake continues and publishes a paused ETA; a manual pause
 * in the Redis control hash survives a drainer restart; a rate override applies fleet-wide; and
 * resume delivers the rest. Lag and the drain ETA are published to Redis and /metrics meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { waitFor } from '../../lib/src/testing/processes.ts';
import { Stack, eventLoopDelay, jitterSlack, makeOrders, metricValue, scrape, sleep, writeDrainerConfig, type Simulator } from './support/harness.ts';

const stack = new Stack();

beforeAll(async () => {
  await stack.start();
});

afterAll(async () => {
  await stack.stop();
});

const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

/** Waits until the simulator's received count stays the same over `quietMs`; returns it. */
async function settled(sim: Simulator, quietMs = 2000): Promise<number> {
  return waitFor(
    async () => {
      const a = (await sim.stats()).received;
      await sleep(quietMs);
      const b = (await sim.stats()).received;
      return a === b ? { n: b } : undefined;
    },
    { timeoutMs: 30_000, what: 'deliveries to stop' },
  ).then((r) => r.n);
}

describe('windows, pause, resume and rate override', () => {
  it('sends nothing during a paused window while intake continues, and publishes a paused ETA', async () => {
    const topic = 'window';
    const name = 'window';
    await stack.createTopic(topic, 4);
    const sim = await stack.simulator({ rate: 0, burst: 1 });
    const now = Date.now();
    // Paused from two minutes ago to thirty minutes from now, UTC (wraps midnight when it must).
    const windows = [{ from: hhmm(now - 2 * 60_000), to: hhmm(now + 30 * 60_000), pause: true }];
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: 100, burst: 10, timezone: 'UTC', windows }]);
    const first = makeOrders(name, 100, 4);
    await stack.produce(topic, first);
    const drainer = await stack.drainer(config);
    // Intake continues during the pause.
    const second = makeOrders(name, 100, 4);
    await stack.produce(topic, second);
    const total = first.length + second.length;
    const published = await waitFor(
      async () => {
        const h = await stack.redis.hgetall(keys.backlog(name));
        return h.backlog === String(total) ? h : undefined;
      },
      { timeoutMs: 20_000, what: 'backlog published' },
    );
    expect(published.paused).toBe('1');
    expect(published.ratePerSecond).toBe('0');
    // The wait for the window to open (up to 30 min) plus the drain at the base rate.
    expect(Number(published.etaSeconds)).toBeGreaterThanOrEqual(27 * 60);
    expect(Number(published.etaSeconds)).toBeLessThanOrEqual(31 * 60 + total / 100 + 60);
    await sleep(2000);
    expect((await sim.stats()).received).toBe(0);
    // The backlog stays in the log: BullMQ holds only the pump's window (max(burst, 5% of the rate × 5 s, 10) = 25 orders).
    const held = await stack.windowJobs(name);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(25);
    const m = await scrape(drainer.metricsUrl);
    expect(metricValue(m, 'spillway_drainer_window_open', { downstream: name })).toBe(0);
    expect(metricValue(m, 'spillway_drainer_rate_limit', { downstream: name })).toBe(0);
    expect(metricValue(m, 'spillway_drainer_backlog_orders', { downstream: name })).toBe(total);
    expect(drainer.logs.some((l) => l.msg === 'delivery rate applied' && l.paused === true && l.window === `${windows[0].from}-${windows[0].to}`)).toBe(true);

    // Without the window, everything buffered meanwhile is delivered.
    await drainer.kill('SIGTERM');
    const open = await stack.drainer(writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: 100, burst: 10 }]));
    await waitFor(async () => (await sim.stats()).distinctKeys === total, { timeoutMs: 30_000, what: 'all orders delivered after the window' });
    expect((await sim.stats()).duplicates).toBe(0);
    await open.kill('SIGTERM');
  }, 120_000);

  it('keeps a manual pause across a restart, applies a rate override, resumes, and publishes lag and ETA', async () => {
    const topic = 'manual';
    const name = 'manual';
    const RATE = 50;
    const BURST = 5;
    const OVERRIDE = 20;
    await stack.createTopic(topic, 6);
    const sim = await stack.simulator({ rate: 0, burst: 1 });
    const orders = makeOrders(name, 500, 6);
    await stack.produce(topic, orders);
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: RATE, burst: BURST }]);
    let drainer = await stack.drainer(config);
    await waitFor(async () => (await sim.stats()).received >= 40, { timeoutMs: 60_000, what: 'deliveries to start' });

    // Lag and ETA while draining at the configured rate.
    const draining = await waitFor(
      async () => {
        const h = await stack.redis.hgetall(keys.backlog(name));
        return h.backlog !== undefined && Number(h.backlog) > 0 && h.ratePerSecond === String(RATE) ? h : undefined;
      },
      { timeoutMs: 10_000, what: 'backlog while draining' },
    );
    expect(Number(draining.etaSeconds)).toBeCloseTo(Number(draining.backlog) / RATE, 0);
    expect(draining.paused).toBe('0');
    const m = await scrape(drainer.metricsUrl);
    for (const metric of ['spillway_drainer_lag_messages', 'spillway_drainer_lag_seconds', 'spillway_drainer_backlog_orders', 'spillway_drainer_drain_eta_seconds']) {
      expect(metricValue(m, metric, { downstream: name }), metric).toBeGreaterThan(0);
    }
    expect(metricValue(m, 'spillway_drainer_deliveries_total', { downstream: name, outcome: 'delivered' })).toBeGreaterThan(0);
    expect(metricValue(m, 'spillway_drainer_rate_limit', { downstream: name })).toBe(RATE);
    expect(metricValue(m, 'spillway_drainer_window_open', { downstream: name })).toBe(1);
    expect(metricValue(m, 'spillway_drainer_delivery_duration_seconds_count', { downstream: name })).toBeGreaterThan(0);

    // Manual pause (what the admin API writes): deliveries stop, and stay stopped across a restart.
    await stack.redis.hset(keys.downstreamControl(name), 'paused', '1', 'updatedAt', String(Date.now()));
    const atPause = await settled(sim);
    expect(atPause).toBeLessThan(orders.length);
    await drainer.kill('SIGTERM');
    const restartedAt = Date.now();
    drainer = await stack.drainer(config);
    const paused = await waitFor(
      async () => {
        const h = await stack.redis.hgetall(keys.backlog(name));
        return Number(h.updatedAt) > restartedAt ? h : undefined;
      },
      { timeoutMs: 10_000, what: 'backlog published after the restart' },
    );
    expect(paused).toMatchObject({ paused: '1', ratePerSecond: '0' });
    // A manual pause has no known end: the ETA says so (a day plus the drain).
    expect(Number(paused.etaSeconds)).toBeGreaterThanOrEqual(86_400);
    await sleep(3000);
    expect((await sim.stats()).received).toBe(atPause);

    // Rate override and resume: delivered at the override, never above override + burst a second.
    await stack.redis.hset(keys.downstreamControl(name), 'rate', String(OVERRIDE), 'paused', '0', 'updatedAt', String(Date.now()));
    await waitFor(async () => (await sim.stats()).received > atPause, { timeoutMs: 10_000, what: 'deliveries to resume' });
    // t0 before the first snapshot and elapsed after the second: the ledger's interval is within elapsedS.
    await eventLoopDelay([drainer]);
    const t0 = Date.now();
    const a = await sim.stats();
    await sleep(5000);
    const b = await sim.stats();
    const elapsedS = (Date.now() - t0) / 1000;
    const slack = jitterSlack(OVERRIDE, (await eventLoopDelay([drainer])).maxMs);
    const overridden = b.received - a.received;
    // The limiter admits `burst` per burst/rate seconds: over any interval T at most rate·T + 2·burst.
    expect(overridden).toBeLessThanOrEqual(OVERRIDE * elapsedS + 2 * BURST + slack);
    expect(overridden).toBeGreaterThanOrEqual(OVERRIDE * elapsedS * 0.7);
    const start = Math.floor(t0 / 1000);
    for (const p of b.perSecond) if (p.second >= start) expect(p.count).toBeLessThanOrEqual(OVERRIDE + BURST + slack);
    expect(metricValue(await scrape(drainer.metricsUrl), 'spillway_drainer_rate_limit', { downstream: name })).toBe(OVERRIDE);

    // Clear the override: the rest is delivered, once each.
    await stack.redis.hset(keys.downstreamControl(name), 'rate', '', 'updatedAt', String(Date.now()));
    await waitFor(async () => (await sim.stats()).distinctKeys === orders.length, { timeoutMs: 60_000, what: 'all orders delivered' });
    expect((await sim.stats()).duplicates).toBe(0);
    await waitFor(async () => (await stack.redis.hget(keys.backlog(name), 'backlog')) === '0', { timeoutMs: 20_000, what: 'backlog 0' });
    expect(await stack.redis.hget(keys.backlog(name), 'etaSeconds')).toBe('0.0');
    await drainer.kill('SIGTERM');
  }, 150_000);
});
