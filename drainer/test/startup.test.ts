/**
 * A drainer started while Redis is down (a restart of Redis and of the drainer at the same time,
 * or a machine booting) waits for Redis and then drains, rather than exiting for a supervisor to
 * restart it: no manual repair.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startRedis, waitFor } from '../../lib/src/testing/processes.ts';
import { Stack, makeOrders, sleep, writeDrainerConfig } from './support/harness.ts';

describe('drainer start-up', () => {
  const stack = new Stack();
  afterAll(() => stack.stop());

  it('waits for Redis when started while it is down, then delivers every order', async () => {
    await stack.start();
    const name = 'startup-redis-down';
    await stack.createTopic(name, 4);
    const sim = await stack.simulator({ rate: 0, burst: 1 });
    const orders = makeOrders(name, 200);
    await stack.produce(name, orders);
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic: name, rate: 500, burst: 50, concurrency: 20 }]);

    const { port, dir } = stack.redisProc;
    await stack.redisProc.stop('SIGKILL');
    // Redis stays down until the drainer has found it down (a fixed sleep was not always long
    // enough for the drainer to get that far on a loaded machine), then a while longer.
    let retried = false;
    const starting = stack.drainer(config, { onLog: (l) => (retried ||= typeof l.msg === 'string' && l.msg.includes('failed; retrying')) });
    await waitFor(() => retried, { timeoutMs: 60_000, what: 'the drainer to retry while Redis is down' });
    await sleep(1000);
    stack.redisProc = await startRedis({ port, dir });
    const drainer = await starting;

    expect(drainer.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('failed; retrying'))).toBe(true);
    await waitFor(async () => (await sim.stats()).distinctKeys >= orders.length, { timeoutMs: 90_000, what: 'every order delivered' });
    const stats = await sim.stats();
    expect(stats.distinctKeys).toBe(orders.length);
    expect(drainer.proc.exitCode).toBeNull();
  }, 180_000);
});
