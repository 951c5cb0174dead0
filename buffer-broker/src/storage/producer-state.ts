/**
 * Idempotent-producer state of one partition, as in Kafka's ProducerStateManager: per producer
 * id, the epoch, the last sequence and the last five batches (first/last sequence, base offset).
 *
 * A retried batch (same pid/epoch/sequences as a cached one) is acknowledged with the offset it
 * got the first time and never appended twice; a gap in sequences gets OUT_OF_ORDER_SEQUENCE_NUMBER
 * and an old epoch INVALID_PRODUCER_EPOCH. The state is rebuilt from batch headers after a
 * restart (snapshot at the recovery checkpoint + replay of the tail), so it survives SIGKILL.
 */

export const MAX_CACHED_BATCHES = 5;

export interface CachedBatch {
  firstSeq: number;
  lastSeq: number;
  baseOffset: number;
  /** Resolves when the original append is durable (already resolved for replayed batches). */
  durable: Promise<number>;
}

export interface ProducerEntry {
  epoch: number;
  lastSeq: number;
  batches: CachedBatch[];
}

export type SequenceCheck =
  | { kind: 'append' }
  | { kind: 'duplicate'; batch: CachedBatch }
  | { kind: 'error'; code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' | 'INVALID_PRODUCER_EPOCH' };

/** Sequence numbers wrap from INT32_MAX to 0. */
export function nextSeq(seq: number, by = 1): number {
  return (seq + by) % 2 ** 31;
}

export class ProducerStateTable {
  readonly producers = new Map<number, ProducerEntry>();

  /** Decides what to do with a batch from producer `pid` (>= 0). Pure: changes nothing. */
  check(pid: number, epoch: number, firstSeq: number, lastSeq: number): SequenceCheck {
    const e = this.producers.get(pid);
    if (!e) return { kind: 'append' }; // first batch seen from this producer on this partition
    if (epoch < e.epoch) return { kind: 'error', code: 'INVALID_PRODUCER_EPOCH' };
    if (epoch > e.epoch) return firstSeq === 0 ? { kind: 'append' } : { kind: 'error', code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' };
    const dup = e.batches.find((b) => b.firstSeq === firstSeq && b.lastSeq === lastSeq);
    if (dup) return { kind: 'duplicate', batch: dup };
    if (firstSeq === nextSeq(e.lastSeq)) return { kind: 'append' };
    return { kind: 'error', code: 'OUT_OF_ORDER_SEQUENCE_NUMBER' };
  }

  record(pid: number, epoch: number, firstSeq: number, lastSeq: number, baseOffset: number, durable: Promise<number>): void {
    let e = this.producers.get(pid);
    if (!e || epoch > e.epoch) {
      e = { epoch, lastSeq, batches: [] };
      this.producers.set(pid, e);
    }
    e.lastSeq = lastSeq;
    e.batches.push({ firstSeq, lastSeq, baseOffset, durable });
    if (e.batches.length > MAX_CACHED_BATCHES) e.batches.shift();
  }

  /** Forgets batches at or above `offset` (after a failed write cut the log back). */
  truncateFrom(offset: number): void {
    for (const [pid, e] of this.producers) {
      e.batches = e.batches.filter((b) => b.baseOffset < offset);
      if (e.batches.length === 0) this.producers.delete(pid);
      else e.lastSeq = e.batches[e.batches.length - 1].lastSeq;
    }
  }

  toJSON(): Record<string, { epoch: number; lastSeq: number; batches: [number, number, number][] }> {
    const out: Record<string, { epoch: number; lastSeq: number; batches: [number, number, number][] }> = {};
    for (const [pid, e] of this.producers) out[pid] = { epoch: e.epoch, lastSeq: e.lastSeq, batches: e.batches.map((b) => [b.firstSeq, b.lastSeq, b.baseOffset]) };
    return out;
  }

  static fromJSON(json: unknown, belowOffset: number): ProducerStateTable {
    const t = new ProducerStateTable();
    if (!json || typeof json !== 'object') return t;
    for (const [pid, raw] of Object.entries(json as Record<string, { epoch: number; lastSeq: number; batches: [number, number, number][] }>)) {
      const batches = raw.batches
        .filter(([, , base]) => base < belowOffset)
        .map(([firstSeq, lastSeq, baseOffset]) => ({ firstSeq, lastSeq, baseOffset, durable: Promise.resolve(baseOffset) }));
      if (batches.length > 0) t.producers.set(Number(pid), { epoch: raw.epoch, lastSeq: batches[batches.length - 1].lastSeq, batches });
    }
    return t;
  }
}
