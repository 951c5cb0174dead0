/**
 * Fetch: reads whole stored batches below the high watermark straight from the segment files
 * and long-polls (up to max_wait_ms) until min_bytes are available, woken by new appends.
 */
import { ErrorCode } from '../protocol/error-codes.ts';
import { decodeFetchRequest, encodeFetchResponse, type FetchPartitionResponse, type FetchRequest, type FetchTopicResponse } from '../protocol/apis/fetch.ts';
import type { PartitionLog } from '../storage/partition-log.ts';
import { bufferPool } from '../storage/buffer-pool.ts';
import type { BrokerContext, Handler } from './context.ts';

/** Long polls are capped so a forged max_wait_ms cannot pin a connection forever. */
const MAX_WAIT_CAP_MS = 30_000;

interface Slot {
  topic: string;
  res: FetchPartitionResponse;
  log: PartitionLog | undefined;
  offset: number;
  maxBytes: number;
}

async function readOnce(ctx: BrokerContext, req: FetchRequest, version: number): Promise<{ topics: FetchTopicResponse[]; slots: Slot[]; bytes: number; error: boolean }> {
  const slots: Slot[] = [];
  const topics = req.topics.map((t) => ({
    topic: t.topic,
    partitions: t.partitions.map((p) => {
      const log = ctx.logs.getPartition(t.topic, p.partition);
      const res: FetchPartitionResponse = {
        partitionIndex: p.partition,
        errorCode: ErrorCode.NONE,
        highWatermark: log ? log.highWatermark : -1,
        lastStableOffset: log ? log.highWatermark : -1,
        logStartOffset: log ? log.logStartOffset : -1,
        records: null,
      };
      if (version < 4) res.errorCode = ErrorCode.UNSUPPORTED_VERSION;
      else if (!log) res.errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
      slots.push({ topic: t.topic, res, log: res.errorCode === ErrorCode.NONE ? log : undefined, offset: p.fetchOffset, maxBytes: Math.max(0, p.partitionMaxBytes) });
      return res;
    }),
  }));
  let budget = Math.max(0, req.maxBytes);
  let bytes = 0;
  let error = false;
  const readSlot = async (s: Slot, max: number) => {
    if (!s.log) return 0;
    const r = await s.log.read(s.offset, Math.max(max, 1));
    s.res.highWatermark = r.highWatermark;
    s.res.lastStableOffset = r.highWatermark;
    s.res.logStartOffset = r.logStartOffset;
    if (r.errorCode === 'OFFSET_OUT_OF_RANGE') {
      s.res.errorCode = ErrorCode.OFFSET_OUT_OF_RANGE;
      error = true;
      return 0;
    }
    if (r.data === null) return 0;
    s.res.records = [r.data];
    ctx.metrics.bytesOut.inc({ topic: s.topic }, r.data.length);
    ctx.metrics.messagesOut.inc({ topic: s.topic }, Math.max(0, r.nextOffset - s.offset));
    return r.data.length;
  };
  for (const s of slots) if (s.res.errorCode !== ErrorCode.NONE) error = true;
  const total = slots.reduce((n, s) => n + s.maxBytes, 0);
  if (total <= budget) {
    const sizes = await Promise.all(slots.map((s) => readSlot(s, s.maxBytes)));
    bytes = sizes.reduce((a, b) => a + b, 0);
  } else {
    for (const s of slots) {
      // The first batch is always returned whole (KIP-74), so progress is made even past the budget.
      if (budget <= 0 && bytes > 0) break;
      const n = await readSlot(s, Math.min(s.maxBytes, Math.max(budget, 1)));
      bytes += n;
      budget -= n;
    }
  }
  return { topics, slots, bytes, error };
}

export const handleFetch: Handler = async (ctx, version, r, w) => {
  const req = decodeFetchRequest(r, version);
  const started = Date.now();
  const maxWait = Math.min(Math.max(req.maxWaitMs, 0), MAX_WAIT_CAP_MS);
  for (;;) {
    const hwBefore = req.topics.flatMap((t) => t.partitions.map((p) => ctx.logs.getPartition(t.topic, p.partition)));
    const res = await readOnce(ctx, req, version);
    const remaining = maxWait - (Date.now() - started);
    if (res.bytes >= Math.max(req.minBytes, 1) || res.error || remaining <= 0 || ctx.shuttingDown) {
      encodeFetchResponse(w, version, ErrorCode.NONE, res.topics);
      w.afterSend(() => releaseRecords(res.slots));
      return true;
    }
    releaseRecords(res.slots); // not enough yet: read again after the wait
    await waitForAppend(hwBefore, res.slots, remaining);
  }
};

/** Hands the read buffers back to the pool (once the response is written, or when it is discarded). */
function releaseRecords(slots: Slot[]): void {
  for (const s of slots) {
    for (const b of s.res.records ?? []) bufferPool.release(b);
    s.res.records = null;
  }
}

/** Resolves when any of the partitions' high watermark moves past the fetch position, or after `ms`. */
function waitForAppend(logs: (PartitionLog | undefined)[], slots: Slot[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const cancels: (() => void)[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const c of cancels) c();
      resolve();
    };
    const timer = setTimeout(finish, ms);
    for (let i = 0; i < logs.length; i++) {
      const log = logs[i];
      if (!log) continue;
      // Data may have arrived between the read and now.
      if (log.highWatermark > slots[i].offset) return finish();
      cancels.push(log.onAdvance(finish));
    }
  });
}
