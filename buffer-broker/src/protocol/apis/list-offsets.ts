/**
 * ListOffsets (key 2), v1-v3.
 *   Request => replica_id INT32 isolation_level INT8 (v2+) topics[name STRING partitions[partition_index INT32 timestamp INT64]]
 *   Response => throttle_time_ms INT32 (v2+) topics[name STRING partitions[partition_index INT32 error_code INT16 timestamp INT64 offset INT64]]
 * timestamp -1 = latest, -2 = earliest, otherwise the first offset whose timestamp >= it.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface ListOffsetsRequest {
  isolationLevel: number;
  topics: { name: string; partitions: { partitionIndex: number; timestamp: number }[] }[];
}
export interface ListOffsetsPartitionResponse {
  partitionIndex: number;
  errorCode: number;
  timestamp: number;
  offset: number;
}
export interface ListOffsetsTopicResponse {
  name: string;
  partitions: ListOffsetsPartitionResponse[];
}

export function decodeListOffsetsRequest(r: Reader, version: number): ListOffsetsRequest {
  r.int32();
  const isolationLevel = version >= 2 ? r.int8() : 0;
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => ({ partitionIndex: r.int32(), timestamp: r.int64() })),
  }));
  return { isolationLevel, topics };
}

export function encodeListOffsetsResponse(w: Writer, version: number, topics: readonly ListOffsetsTopicResponse[]): void {
  if (version >= 2) w.int32(0);
  w.array(topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => w.int32(p.partitionIndex).int16(p.errorCode).int64(p.timestamp).int64(p.offset));
  });
}
