/**
 * What the simulator received: accepted deliveries, distinct Idempotency-Keys, duplicates, the
 * busiest wall-clock second, and a count per answered status. The loadtest verifier and the
 * tests read it through GET /stats; DELETE /stats resets it.
 *
 * Deliveries are bucketed by the wall-clock second in which they were admitted (took their
 * token), so `maxPerSecond <= rate + burst` holds whatever the added latency. Answers that
 * complete after a reset but belong to requests admitted before it are not counted (each record
 * carries the generation it was admitted in).
 *
 * Memory: every distinct accepted key is kept (a KeySet, which spreads them over many small Sets so
 * that no insert stalls the simulator on a rehash) — roughly 100 bytes per key for UUID-sized keys
 * (10 million orders ≈ 1 GB). That is the simulator's only unbounded state; reset it between
 * runs. The per-second tail keeps the last TAIL_SECONDS seconds.
 */
import { KeySet } from './key-set.ts';

export const TAIL_SECONDS = 60;

export interface PerSecond {
  /** Epoch second (floor(ms / 1000)). */
  second: number;
  count: number;
}

export interface Stats {
  received: number;
  distinctKeys: number;
  duplicates: number;
  maxPerSecond: number;
  byStatus: Record<string, number>;
  /** Accepted deliveries per second over the last TAIL_SECONDS seconds that had any, oldest first. */
  perSecond: PerSecond[];
  /** Every distinct accepted key, in no particular order, only when asked for (GET /stats?keys=true). */
  keys?: string[];
}

export class Ledger {
  private received = 0;
  private duplicates = 0;
  private maxPerSecond = 0;
  private newestSecond = 0;
  private keys = new KeySet();
  private perSecond = new Map<number, number>();
  private byStatus = new Map<number, number>();
  private gen = 0;

  /** Changes on every reset; captured when a request is admitted. */
  get generation(): number {
    return this.gen;
  }

  /** Counts one answer with this status. Returns false (and counts nothing) if from an older generation. */
  recordStatus(status: number, generation: number): boolean {
    if (generation !== this.gen) return false;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    return true;
  }

  /**
   * Counts one accepted delivery of `key` admitted at `admittedAtMs` (epoch ms). Returns whether the
   * key had been accepted before, or undefined if the delivery belongs to an older generation.
   */
  recordDelivery(key: string, admittedAtMs: number, generation: number): { duplicate: boolean } | undefined {
    if (generation !== this.gen) return undefined;
    this.received += 1;
    const duplicate = !this.keys.add(key);
    if (duplicate) this.duplicates += 1;
    const second = Math.floor(admittedAtMs / 1000);
    const n = (this.perSecond.get(second) ?? 0) + 1;
    this.perSecond.set(second, n);
    if (n > this.maxPerSecond) this.maxPerSecond = n;
    if (second > this.newestSecond) {
      this.newestSecond = second;
      if (this.perSecond.size > 2 * TAIL_SECONDS) this.prune();
    }
    return { duplicate };
  }

  reset(): void {
    this.received = 0;
    this.duplicates = 0;
    this.maxPerSecond = 0;
    this.newestSecond = 0;
    this.keys = new KeySet();
    this.perSecond = new Map();
    this.byStatus = new Map();
    this.gen += 1;
  }

  snapshot(includeKeys = false): Stats {
    const byStatus: Record<string, number> = {};
    for (const [status, n] of [...this.byStatus].sort((a, b) => a[0] - b[0])) byStatus[String(status)] = n;
    const from = this.newestSecond - TAIL_SECONDS + 1;
    const perSecond = [...this.perSecond]
      .filter(([s]) => s >= from)
      .sort((a, b) => a[0] - b[0])
      .map(([second, count]) => ({ second, count }));
    const stats: Stats = {
      received: this.received,
      distinctKeys: this.keys.size,
      duplicates: this.duplicates,
      maxPerSecond: this.maxPerSecond,
      byStatus,
      perSecond,
    };
    if (includeKeys) stats.keys = [...this.keys];
    return stats;
  }

  private prune(): void {
    const from = this.newestSecond - TAIL_SECONDS + 1;
    for (const s of this.perSecond.keys()) if (s < from) this.perSecond.delete(s);
  }
}
