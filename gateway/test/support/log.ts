/**
 * Reads what the gateway appended back from the broker (Fetch over a raw connection, decoded by
 * kafkajs's own parser), so tests compare 202 answers with the log itself.
 */
import type { Order } from '../../../lib/src/order.ts';
import { fetchAll } from '../../../buffer-broker/test/support/fetch-all.ts';

export interface LoggedOrder {
  partition: number;
  offset: number;
  key: string | null;
  orderIdHeader: string | null;
  order: Order;
}

export async function readOrders(brokerPort: number, topic: string, partitions: Iterable<number>): Promise<LoggedOrder[]> {
  const out: LoggedOrder[] = [];
  for (const partition of partitions) {
    for (const r of await fetchAll(brokerPort, topic, partition)) {
      out.push({
        partition,
        offset: Number(r.offset),
        key: r.key === null ? null : r.key.toString('utf8'),
        orderIdHeader: r.headers['order-id'] === undefined ? null : r.headers['order-id'].toString('utf8'),
        order: JSON.parse(r.value?.toString('utf8') ?? 'null') as Order,
      });
    }
  }
  return out;
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
