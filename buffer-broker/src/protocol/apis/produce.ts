/**
 * Produce (key 0), v0-v7 advertised; v3-v7 carry record batch v2 and are served. v0-v2
 * (MessageSet v0/v1) are advertised only because librdkafka 2.0.2 gates compression on
 * Produce v0 being in range (as Kafka 4.0 does, KAFKA-18659); they are answered UNSUPPORTED_VERSION.
 *   Request => transactional_id NULLABLE_STRING (v3+) acks INT16 timeout_ms INT32
 *     topic_data[name STRING partition_data[index INT32 records NULLABLE_BYTES]]
 *   Response => responses[name STRING partition_responses[index INT32 error_code INT16 base_offset INT64
 *     log_append_time_ms INT64 (v2+) log_start_offset INT64 (v5+)]] throttle_time_ms INT32 (v1+)
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface ProducePartitionData {
  index: number;
  records: Buffer | null;
}
export interface ProduceTopicData {
  name: string;
  partitions: ProducePartitionData[];
}
export interface ProduceRequest {
  transactionalId: string | null;
  acks: number;
  timeoutMs: number;
  topics: ProduceTopicData[];
}

export interface ProducePartitionResponse {
  index: number;
  errorCode: number;
  baseOffset: number;
  logAppendTimeMs: number;
  logStartOffset: number;
}
export interface ProduceTopicResponse {
  name: string;
  partitions: ProducePartitionResponse[];
}

export function decodeProduceRequest(r: Reader, version: number): ProduceRequest {
  const transactionalId = version >= 3 ? r.nullableString() : null;
  const acks = r.int16();
  const timeoutMs = r.int32();
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => ({ index: r.int32(), records: r.nullableBytes() })),
  }));
  return { transactionalId, acks, timeoutMs, topics };
}

export function encodeProduceResponse(w: Writer, version: number, topics: readonly ProduceTopicResponse[]): void {
  w.array(topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      w.int32(p.index).int16(p.errorCode).int64(p.baseOffset);
      if (version >= 2) w.int64(p.logAppendTimeMs);
      if (version >= 5) w.int64(p.logStartOffset);
    });
  });
  if (version >= 1) w.int32(0);
}
