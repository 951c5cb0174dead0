/** Reads a whole partition with Fetch v11 over a raw connection, decoded by kafkajs's own response parser. */
import { expect } from 'vitest';
import { RawConnection, kafkajsApi } from './raw-client.ts';

export interface FetchedRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
}
export interface FetchResponse {
  responses: { partitions: { partition: number; errorCode: number; highWatermark: string; messages: FetchedRecord[] }[] }[];
}

/** Reads a whole partition with Fetch v11, decoded by kafkajs's own response parser. */
export async function fetchAll(port: number, topic: string, partition: number): Promise<FetchedRecord[]> {
  const conn = await RawConnection.connect(port);
  const out: FetchedRecord[] = [];
  let offset = 0;
  try {
    for (let corr = 1; ; corr++) {
      const api = kafkajsApi('fetch', 11, {
        replicaId: -1,
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: 1 << 20,
        isolationLevel: 1,
        topics: [{ topic, partitions: [{ partition, fetchOffset: String(offset), maxBytes: 64 * 1024 }] }],
      });
      const res = await conn.call<FetchResponse>(api, corr);
      const p = res.responses[0].partitions[0];
      expect(p.errorCode).toBe(0);
      const fresh = p.messages.filter((m) => Number(m.offset) >= offset);
      out.push(...fresh);
      if (fresh.length === 0) return out;
      offset = Number(fresh[fresh.length - 1].offset) + 1;
      if (offset >= Number(p.highWatermark)) return out;
    }
  } finally {
    conn.close();
  }
}

