/**
 * Metadata (key 3), v1-v6.
 *   Request => topics NULLABLE ARRAY[name STRING] (null = all) allow_auto_topic_creation BOOLEAN (v4+)
 *   Response => throttle_time_ms INT32 (v3+) brokers[node_id INT32 host STRING port INT32 rack NULLABLE_STRING]
 *     cluster_id NULLABLE_STRING (v2+) controller_id INT32
 *     topics[error_code INT16 name STRING is_internal BOOLEAN
 *       partitions[error_code INT16 partition_index INT32 leader_id INT32 replica_nodes[INT32]
 *         isr_nodes[INT32] offline_replicas[INT32] (v5+)]]
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface MetadataRequest {
  topics: string[] | null;
  allowAutoTopicCreation: boolean;
}

export interface MetadataBroker {
  nodeId: number;
  host: string;
  port: number;
}
export interface MetadataPartition {
  errorCode: number;
  partitionIndex: number;
  leaderId: number;
}
export interface MetadataTopic {
  errorCode: number;
  name: string;
  partitions: MetadataPartition[];
}
export interface MetadataResponse {
  brokers: MetadataBroker[];
  clusterId: string;
  controllerId: number;
  topics: MetadataTopic[];
}

export function decodeMetadataRequest(r: Reader, version: number): MetadataRequest {
  let topics = version === 0 ? r.array((r) => r.string()) : r.nullableArray((r) => r.string());
  // v0: an empty array meant "all topics".
  if (version === 0 && topics !== null && topics.length === 0) topics = null;
  const allowAutoTopicCreation = version >= 4 ? r.bool() : true;
  return { topics, allowAutoTopicCreation };
}

export function encodeMetadataResponse(w: Writer, version: number, res: MetadataResponse): void {
  if (version >= 3) w.int32(0);
  w.array(res.brokers, (w, b) => {
    w.int32(b.nodeId).string(b.host).int32(b.port);
    if (version >= 1) w.nullableString(null);
  });
  if (version >= 2) w.nullableString(res.clusterId);
  if (version >= 1) w.int32(res.controllerId);
  w.array(res.topics, (w, t) => {
    w.int16(t.errorCode).string(t.name);
    if (version >= 1) w.bool(false);
    w.array(t.partitions, (w, p) => {
      w.int16(p.errorCode).int32(p.partitionIndex).int32(p.leaderId);
      const replicas = p.leaderId >= 0 ? [p.leaderId] : [];
      w.array(replicas, (w, n) => w.int32(n));
      w.array(replicas, (w, n) => w.int32(n));
      if (version >= 5) w.int32(0);
    });
  });
}
