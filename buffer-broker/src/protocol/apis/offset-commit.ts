/**
 * OffsetCommit (key 8), v2-v7 (v0-v1 are ZooKeeper-era layouts, v8+ is flexible; neither is served).
 *   Request => group_id STRING generation_id INT32 member_id STRING group_instance_id NULLABLE_STRING (v7+)
 *     retention_time_ms INT64 (v2-v4)
 *     topics[name STRING partitions[partition_index INT32 committed_offset INT64
 *       committed_leader_epoch INT32 (v6+) committed_metadata NULLABLE_STRING]]
 *   Response => throttle_time_ms INT32 (v3+) topics[name STRING partitions[partition_index INT32 error_code INT16]]
 * retention_time_ms is read and ignored (retention is a broker setting, as in Kafka since v5).
 * committed_leader_epoch decodes as -1 before v6.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface OffsetCommitRequestPartition {
  partitionIndex: number;
  committedOffset: number;
  committedLeaderEpoch: number;
  committedMetadata: string | null;
}
export interface OffsetCommitRequestTopic {
  name: string;
  partitions: OffsetCommitRequestPartition[];
}
export interface OffsetCommitRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  /** -1 when absent (v5+). */
  retentionTimeMs: number;
  topics: OffsetCommitRequestTopic[];
}
export interface OffsetCommitResponseTopic {
  name: string;
  partitions: readonly { partitionIndex: number; errorCode: number }[];
}

export function decodeOffsetCommitRequest(r: Reader, version: number): OffsetCommitRequest {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  const groupInstanceId = version >= 7 ? r.nullableString() : null;
  const retentionTimeMs = version >= 2 && version <= 4 ? r.int64() : -1;
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => ({
      partitionIndex: r.int32(),
      committedOffset: r.int64(),
      committedLeaderEpoch: version >= 6 ? r.int32() : -1,
      committedMetadata: r.nullableString(),
    })),
  }));
  return { groupId, generationId, memberId, groupInstanceId, retentionTimeMs, topics };
}

export function encodeOffsetCommitResponse(w: Writer, version: number, topics: readonly OffsetCommitResponseTopic[]): void {
  if (version >= 3) w.int32(0);
  w.array(topics, (w, t) => {
    w.string(t.name);
    w.array(t.partitions, (w, p) => w.int32(p.partitionIndex).int16(p.errorCode));
  });
}
