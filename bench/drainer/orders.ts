/**
 * The backlog: order JSONs shaped like the gateway's (unique orderId, key = sku), produced with
 * kafkajs in batches with a few sends in flight, all acknowledged (acks=all) before a run starts.
 */
import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';

const SKUS = 1000;
const BATCH = 1000;
const IN_FLIGHT = 4;

/** Produces `n` orders to `topic`; returns the payload bytes written. */
export async function produceOrders(producer: Producer, topic: string, n: number): Promise<{ bytes: number }> {
  let next = 0;
  let bytes = 0;
  const acceptedAt = Date.now();
  const lane = async () => {
    while (next < n) {
      const from = next;
      const to = Math.min(n, from + BATCH);
      next = to;
      const messages: { key: string; value: string }[] = [];
      for (let i = from; i < to; i++) {
        const sku = `SKU-${i % SKUS}`;
        const value = JSON.stringify({ orderId: randomUUID(), sku, userId: `u-${i}`, quantity: 1 + (i % 3), priceCents: 1999, acceptedAt });
        bytes += value.length;
        messages.push({ key: sku, value });
      }
      await producer.send({ topic, acks: -1, messages });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  return { bytes };
}
