/**
 * Crashes mid-drain lose nothing: every produced order reaches the downstream at least once, the
 * committed offsets reach the end, and a redelivery carries the order's Idempotency-Key, so the
 * simulator's ledger counts it as a duplicate of a key it already has (received = distinct +
 * duplicates). The counts are printed.
 *
 * - A drainer killed with SIGKILL and started again. Its restart waits for the dead member's
 *   session to expire before it owns the partitions (30 s), and the deliveries that were in flight
 *   are retried once BullMQ finds them stalled (lock expiry plus up to two stalled-check intervals,
 *   about a minute with BullMQ's defaults); only those can be repeated.
 * - redis-server killed and restarted on the same port. With an append-only file fsynced on every
 *   write (same data dir) BullMQ's window survives and the drain continues (a delivery whose lock
 *   went missing in the outage waits for the stalled check, as above). Without persistence
 *   (restarted empty: the window, the done marks and the queue's rate limit are gone) the drainer
 *   notices the missing jobs, fetches those partitions again from the lowest unfinished offset
 *   (commits never passed it) and re-applies the rate limit. Either way the downstream never sees
 *   more than rate + burst in a second (plus the stated slack when the machine ran the drainer
 *   late, see jitterSlack).
 *
 * The scenarios wait mostly on those timers, so they run concurrently, each on its own broker
 * and redis-server.
 */
import { describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { startRedis, tempDir, waitFor } from '../../lib/src/testing/processes.ts';
import { Stack, eventLoopDelay, jitterSlack, makeOrders, sleep, writeDrainerConfig, type DrainerProcess } from './support/harness.ts';

const AOF = ['--appendonly', 'yes', '--appendfsync', 'always'];
const RATE = 100;
const BURST = 10;
const CONCURRENCY = 20;
const ORDERS = 600;

/** Drains ORDERS orders, runs `crash` once 150 are delivered, and checks that nothing was lost. */
async function drainThrough(
  label: string,
  redisArgs: string[],
  crash: (stack: Stack, drainer: DrainerProcess, restartDrainer: () => Promise<DrainerProcess>) => Promise<DrainerProcess>,
  opts: { maxDuplicates?: number } = {},
): Promise<void> {
  const stack = new Stack();
  try {
    await stack.start({ redis: { args: redisArgs } });
    const topic = `crash-${label}`;
    const name = `crash-${label}`;
    await stack.createTopic(topic, 12);
    const sim = await stack.simulator({ rate: 0, burst: 1 });
    // Service time keeps deliveries in flight at the moment of the crash.
    await sim.control({ latencyMs: 100 });
    const orders = makeOrders(name, ORDERS);
    await stack.produce(topic, orders);
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: RATE, burst: BURST, concurrency: CONCURRENCY }]);
    const drainer = await stack.drainer(config);
    await eventLoopDelay([drainer]);
    await waitFor(async () => (await sim.stats()).received >= 150, { timeoutMs: 60_000, what: 'deliveries under way' });
    const before = await eventLoopDelay([drainer]);
    const atCrash = (await sim.stats()).received;
    const t0 = Date.now();
    const survivor = await crash(stack, drainer, () => stack.drainer(config));
    if (survivor !== drainer) await eventLoopDelay([survivor]);
    await waitFor(async () => (await sim.stats()).distinctKeys === orders.length, { timeoutMs: 120_000, intervalMs: 250, what: 'every order delivered' });
    // Done means committed: the stalled deliveries were retried and the backlog reached 0.
    await waitFor(async () => (await stack.redis.hget(keys.backlog(name), 'backlog')) === '0', { timeoutMs: 120_000, intervalMs: 500, what: 'backlog 0 (all offsets committed)' });
    const s = await sim.stats(true);
    const slack = jitterSlack(RATE, Math.max(before.maxMs, (await eventLoopDelay([survivor])).maxMs));
    console.log(
      `crash (${label}): produced ${orders.length}, received ${s.received}, distinct ${s.distinctKeys}, duplicates ${s.duplicates}, max/s ${s.maxPerSecond} (slack ${slack}); ${atCrash} delivered before the crash; settled ${((Date.now() - t0) / 1000).toFixed(1)} s after it`,
    );
    expect(new Set(s.keys)).toEqual(new Set(orders.map((o) => o.orderId)));
    expect(s.received).toBe(s.distinctKeys + s.duplicates);
    expect(s.maxPerSecond).toBeLessThanOrEqual(RATE + BURST + slack);
    if (opts.maxDuplicates !== undefined) expect(s.duplicates).toBeLessThanOrEqual(opts.maxDuplicates);
    expect(survivor.proc.exitCode).toBeNull();
    await survivor.kill('SIGTERM');
  } finally {
    await stack.stop();
  }
}

describe.concurrent('crash mid-drain', () => {
  it('SIGKILL of a drainer and a restart: every order delivered at least once, redeliveries keep their key', async () => {
    await drainThrough(
      'drainer-sigkill',
      [],
      async (_stack, drainer, restartDrainer) => {
        await drainer.kill('SIGKILL');
        return restartDrainer();
      },
      // Only deliveries in flight at the kill can be repeated.
      { maxDuplicates: CONCURRENCY },
    );
  }, 240_000);

  it('redis-server SIGKILL and restart with an fsynced AOF (same port and dir): every order delivered at least once', async () => {
    await drainThrough('redis-aof', AOF, async (stack, drainer) => {
      const { port, dir } = stack.redisProc;
      await stack.redisProc.stop('SIGKILL');
      await sleep(2000);
      stack.redisProc = await startRedis({ port, dir, args: AOF });
      // The drainer rides out the outage (it does not exit).
      return drainer;
    });
  }, 240_000);

  it('redis-server restarted empty (no persistence): the drainer re-reads what it lost, still at most rate + burst a second', async () => {
    await drainThrough('redis-empty', [], async (stack, drainer) => {
      const { port } = stack.redisProc;
      await stack.redisProc.stop('SIGKILL');
      await sleep(2000);
      stack.redisProc = await startRedis({ port, dir: tempDir('redis-empty') });
      await waitFor(() => drainer.logs.some((l) => l.msg === 'jobs missing from the window (Redis lost data?): fetching the partition again'), {
        timeoutMs: 30_000,
        what: 'the drainer to notice the lost window',
      });
      return drainer;
    });
  }, 240_000);
});
