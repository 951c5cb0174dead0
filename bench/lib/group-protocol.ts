/**
 * Messages between the bench (group-fleet.ts) and its consumer processes (group-worker.ts): the
 * task a worker is started with, and the JSON lines it answers with. Kept apart from the worker,
 * whose module runs as soon as it is imported.
 */
import { z } from 'zod';

/** Kafka records whose produce-to-consume latency is also split at the record's CreateTime: one in this many. */
export const SPLIT_EVERY = 8;

export const groupTask = z.object({
  system: z.enum(['kafka', 'redis', 'jetstream']),
  members: z.array(z.string()).min(1),
  records: z.number().int().positive(),
  /** Warm-up records, indices [records, records + warmup), produced before the measured ones (see group-worker.ts); 0 = none. */
  warmup: z.number().int().min(0).default(0),
  kafka: z.object({ bootstrap: z.string(), topic: z.string(), groupId: z.string(), maxWaitMs: z.number().int().positive(), commit: z.enum(['async', 'awaited', 'interval']), commitIntervalMs: z.number().int().min(0), partitionsConcurrently: z.number().int().positive().default(1) }).optional(),
  redis: z.object({ port: z.number().int().positive(), key: z.string(), group: z.string(), count: z.number().int().positive(), blockMs: z.number().int().positive() }).optional(),
  jetstream: z.object({ port: z.number().int().positive(), stream: z.string(), durable: z.string(), batch: z.number().int().positive(), expiresMs: z.number().int().min(1000) }).optional(),
});
export type GroupTask = z.infer<typeof groupTask>;

const histogramJson = z.object({
  buckets: z.array(z.tuple([z.number(), z.number()])),
  count: z.number(),
  minUs: z.number(),
  maxUs: z.number(),
  sumUs: z.number(),
  negative: z.number(),
});

export const groupWorkerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('joined'), member: z.string(), partitions: z.array(z.number()) }),
  z.object({ type: z.literal('progress'), consumed: z.number(), warmed: z.number() }),
  z.object({
    type: z.literal('done'),
    consumed: z.number(),
    deliveries: z.number(),
    firstUs: z.number(),
    lastUs: z.number(),
    cpuMs: z.number(),
    histogram: histogramJson,
    /**
     * kafka only: the same latency split at the record's CreateTime (set by the producing client
     * when it took the record; ms resolution): send stamp -> CreateTime, CreateTime -> consumed.
     */
    split: z.object({ toClient: histogramJson, clientToConsumer: histogramJson }).optional(),
    /** The seen-bitmap, one bit per record index, base64. */
    seen: z.string(),
    check: z.object({ records: z.number(), duplicates: z.number(), foreign: z.number(), wrongSize: z.number() }),
    members: z.array(z.object({ member: z.string(), consumed: z.number(), deliveries: z.number() })),
  }),
  z.object({ type: z.literal('error'), message: z.string() }),
]);
export type GroupWorkerMessage = z.infer<typeof groupWorkerMessage>;
