/**
 * CreateTopics (key 19), v0-v4.
 *   Request => topics[name STRING num_partitions INT32 replication_factor INT16
 *     assignments[partition_index INT32 broker_ids[INT32]] configs[name STRING value NULLABLE_STRING]]
 *     timeout_ms INT32 validate_only BOOLEAN (v1+)
 *   Response => throttle_time_ms INT32 (v2+) topics[name STRING error_code INT16 error_message NULLABLE_STRING (v1+)]
 * kafkajs sends num_partitions/replication_factor -1 when omitted: broker defaults apply.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface CreatableTopic {
  name: string;
  numPartitions: number;
  replicationFactor: number;
  assignments: { partitionIndex: number; brokerIds: number[] }[];
  configs: { name: string; value: string | null }[];
}
export interface CreateTopicsRequest {
  topics: CreatableTopic[];
  timeoutMs: number;
  validateOnly: boolean;
}
export interface CreateTopicResult {
  name: string;
  errorCode: number;
  errorMessage: string | null;
}

export function decodeCreateTopicsRequest(r: Reader, version: number): CreateTopicsRequest {
  const topics = r.array((r) => ({
    name: r.string(),
    numPartitions: r.int32(),
    replicationFactor: r.int16(),
    assignments: r.array((r) => ({ partitionIndex: r.int32(), brokerIds: r.array((r) => r.int32()) })),
    configs: r.array((r) => ({ name: r.string(), value: r.nullableString() })),
  }));
  const timeoutMs = r.int32();
  const validateOnly = version >= 1 ? r.bool() : false;
  return { topics, timeoutMs, validateOnly };
}

export function encodeCreateTopicsResponse(w: Writer, version: number, topics: readonly CreateTopicResult[]): void {
  if (version >= 2) w.int32(0);
  w.array(topics, (w, t) => {
    w.string(t.name).int16(t.errorCode);
    if (version >= 1) w.nullableString(t.errorMessage);
  });
}
