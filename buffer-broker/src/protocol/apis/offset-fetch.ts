/**
 * OffsetFetch (key 9), v1-v5 (v0 reads ZooKeeper offsets, v6+ is flexible; neither is served).
 *   Request => group_id STRING topics[name STRING partition_indexes[INT32]]   (v2+: topics is NULLABLE, null = all)
 *   Response => throttle_time_ms INT32 (v3+)
 *     topics[name STRING partitions[partition_index INT32 committed_offset INT64
 *       committed_leader_epoch INT32 (v5+) metadata NULLABLE_STRING error_code INT16]]
 *     error_code INT16 (v2+)
 * A partition without a committed offset answers offset -1, leader epoch -1, metadata "", error 0.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface OffsetFetchRequestTopic {
  name: string;
  partitionIndexes: number[];
}
export interface OffsetFetchRequest {
  groupId: string;
  /** null = every partition the group has committed (v2+ only). */
  topics: OffsetFetchRequestTopic[] | null;
}
export interface OffsetFetchResponsePartition {
  partitionIndex: number;
  committedOffset: number;
  committedLeaderEpoch: number;
  metadata: string | null;
  errorCode: number;
}
export interface OffsetFetchResponseTopic {
  name: string;
  partitions: readonly OffsetFetchResponsePartition[];
}
export interface OffsetFetchResponse {
  errorCode: number;
  topics: readonly OffsetFetchResponseTopic[];
}

export function decodeOffsetFetchRequest(r: Reader, version: number): OffsetFetchRequest {
  const groupId = r.string();
  const topic = (r: Reader): OffsetFetchRequestTopic => ({ name: r.string(), partitionIndexes: r.array((r) => r.int32()) });
  const topics = version >= 2 ? r.nullableArray(topic) : r.array(topic);
  return { groupId, topics };
}

export function encodeOffsetFetchResponse(w: Writer, version: number, res: OffsetFetchResponse): void {
  if (version >= 3) w.int32(0);
  w.array(res.topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => {
      w.int32(p.partitionIndex).int64(p.committedOffset);
      if (version >= 5) w.int32(p.committedLeaderEpoch);
      w.nullableString(p.metadata).int16(p.errorCode);
    });
  });
  if (version >= 2) w.int16(res.errorCode);
}
