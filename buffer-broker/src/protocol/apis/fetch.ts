/**
 * Fetch (key 1), v0-v11 advertised; v4-v11 are served (record batch v2), v0-v3 answered
 * UNSUPPORTED_VERSION per partition.
 *   Request => replica_id INT32 max_wait_ms INT32 min_bytes INT32 max_bytes INT32 (v3+)
 *     isolation_level INT8 (v4+) session_id INT32 (v7+) session_epoch INT32 (v7+)
 *     topics[topic STRING partitions[partition INT32 current_leader_epoch INT32 (v9+) fetch_offset INT64
 *       log_start_offset INT64 (v5+) partition_max_bytes INT32]]
 *     forgotten_topics_data[topic STRING partitions[INT32]] (v7+) rack_id STRING (v11+)
 *   Response => throttle_time_ms INT32 (v1+) error_code INT16 (v7+) session_id INT32 (v7+)
 *     responses[topic STRING partitions[partition_index INT32 error_code INT16 high_watermark INT64
 *       last_stable_offset INT64 (v4+) log_start_offset INT64 (v5+)
 *       aborted_transactions NULLABLE[producer_id INT64 first_offset INT64] (v4+)
 *       preferred_read_replica INT32 (v11+) records NULLABLE_BYTES]]
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface FetchPartitionRequest {
  partition: number;
  currentLeaderEpoch: number;
  fetchOffset: number;
  partitionMaxBytes: number;
}
export interface FetchTopicRequest {
  topic: string;
  partitions: FetchPartitionRequest[];
}
export interface FetchRequest {
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  isolationLevel: number;
  topics: FetchTopicRequest[];
}

export interface FetchPartitionResponse {
  partitionIndex: number;
  errorCode: number;
  highWatermark: number;
  lastStableOffset: number;
  logStartOffset: number;
  records: Buffer[] | null;
}
export interface FetchTopicResponse {
  topic: string;
  partitions: FetchPartitionResponse[];
}

export function decodeFetchRequest(r: Reader, version: number): FetchRequest {
  r.int32(); // replica_id
  const maxWaitMs = r.int32();
  const minBytes = r.int32();
  const maxBytes = version >= 3 ? r.int32() : 0x7fffffff;
  const isolationLevel = version >= 4 ? r.int8() : 0;
  if (version >= 7) {
    r.int32(); // session_id: fetch sessions are not supported; every fetch is a full fetch
    r.int32(); // session_epoch
  }
  const topics = r.array((r) => ({
    topic: r.string(),
    partitions: r.array((r) => {
      const partition = r.int32();
      const currentLeaderEpoch = version >= 9 ? r.int32() : -1;
      const fetchOffset = r.int64();
      if (version >= 5) r.int64(); // log_start_offset (followers only)
      const partitionMaxBytes = r.int32();
      return { partition, currentLeaderEpoch, fetchOffset, partitionMaxBytes };
    }),
  }));
  if (version >= 7) r.array((r) => ({ topic: r.string(), partitions: r.array((r) => r.int32()) }));
  if (version >= 11) r.string();
  return { maxWaitMs, minBytes, maxBytes, isolationLevel, topics };
}

export function encodeFetchResponse(w: Writer, version: number, errorCode: number, topics: readonly FetchTopicResponse[]): void {
  if (version >= 1) w.int32(0);
  if (version >= 7) w.int16(errorCode).int32(0);
  w.array(topics, (w, t) => {
    w.string(t.topic);
    w.array(t.partitions, (w, p) => {
      w.int32(p.partitionIndex).int16(p.errorCode).int64(p.highWatermark);
      if (version >= 4) w.int64(p.lastStableOffset);
      if (version >= 5) w.int64(p.logStartOffset);
      if (version >= 4) w.array([], () => undefined);
      if (version >= 11) w.int32(-1);
      w.bytesChunks(p.records ?? []); // never null: librdkafka rejects a -1 MessageSetSize
    });
  });
}
