/**
 * The fault-injection suite at CI scale: every fault once, during a spike above what the capped
 * downstream takes, with real processes (redis-server with an fsynced AOF, the broker on a tmpfs,
 * two gateways, two drainers) and the simulator's ledger. Zero loss, zero oversell, no 500 and no
 * hang, every process back by itself. `npm run chaos` runs the same at a larger scale.
 */
import { describe, expect, it } from 'vitest';
import { FAULTS, reportTable, runChaos } from './chaos.ts';

describe('chaos (CI scale)', () => {
  it('survives each fault with nothing lost, nothing oversold, 503s (not 500s or hangs) while a dependency is down', async () => {
    const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const report = await runChaos({
      seed,
      // Arrivals above the downstream's capacity; half of them are for SKUs that sell out, so
      // what is accepted stays below the drain rate and the final drain is short.
      rate: 130,
      drainerRate: 100,
      downstreamRate: 110,
      downstreamLatencyMs: 50,
      gateways: 2,
      drainers: 2,
      repeat: 1,
      faults: FAULTS,
      outageMs: [1000, 2500],
      gapMs: [500, 2000],
      tmpfsMb: 64,
      drainTimeoutMs: 150_000,
      recoveryTimeoutMs: 90_000,
      poisonRatio: 0.01,
      hangMs: 20_000,
      log: (line) => console.log(line),
    });
    console.log(reportTable(report));
    const t = report.totals;
    expect(report.drained, 'every 202 delivered or dead-lettered within the drain bound').toBe(true);
    expect(t.lost, `lost: ${report.lostSample.join('; ')}`).toBe(0);
    expect(t.oversold, report.oversoldDetail.join('; ')).toBe(0);
    expect(report.oversoldDetail).toEqual([]);
    expect(t.failures5xxOrHang, `500s/hangs: ${report.failureSample.join('; ')}`).toBe(0);
    expect(report.keyMismatches, 'every delivery carries its orderId as Idempotency-Key').toBe(0);
    expect(report.failedRestarts).toEqual([]);
    expect(report.harnessErrors).toEqual([]);
    expect(t.unrecovered).toBe(0);
    expect(report.unhealthy).toEqual([]);
    // The faults really bit: outages of a dependency were answered 503, and orders flowed in every phase.
    for (const r of report.rows.filter((x) => x.skipped === undefined && x.injected > 0)) expect(r.accepted, `202s during ${r.fault}`).toBeGreaterThan(0);
    for (const f of ['broker-kill', 'redis-restart'] as const) expect(report.rows.find((r) => r.fault === f)?.unavailable503, `503s during ${f}`).toBeGreaterThan(0);
    expect(t.deadLettered, 'poison orders dead-lettered').toBeGreaterThan(0);
  }, 600_000);
});
