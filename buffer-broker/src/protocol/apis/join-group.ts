/**
 * JoinGroup (key 11), v0-v5 (v6+ is flexible and not served).
 *   Request => group_id STRING session_timeout_ms INT32 rebalance_timeout_ms INT32 (v1+) member_id STRING
 *     group_instance_id NULLABLE_STRING (v5+) protocol_type STRING protocols[name STRING metadata BYTES]
 *   Response => throttle_time_ms INT32 (v2+) error_code INT16 generation_id INT32 protocol_name STRING
 *     leader STRING member_id STRING members[member_id STRING group_instance_id NULLABLE_STRING (v5+) metadata BYTES]
 * v0 has no rebalance timeout: it decodes as -1 and the coordinator uses the session timeout
 * (as Kafka does). Only the leader's response carries a non-empty members array.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface JoinGroupProtocol {
  name: string;
  metadata: Buffer;
}
export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  /** -1 on v0 (not on the wire). */
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: JoinGroupProtocol[];
}
export interface JoinGroupResponseMember {
  memberId: string;
  groupInstanceId: string | null;
  metadata: Buffer;
}
export interface JoinGroupResponse {
  errorCode: number;
  generationId: number;
  /** STRING, not nullable on v0-v5: "" when there is none. */
  protocolName: string;
  leader: string;
  memberId: string;
  members: readonly JoinGroupResponseMember[];
}

export function decodeJoinGroupRequest(r: Reader, version: number): JoinGroupRequest {
  const groupId = r.string();
  const sessionTimeoutMs = r.int32();
  const rebalanceTimeoutMs = version >= 1 ? r.int32() : -1;
  const memberId = r.string();
  const groupInstanceId = version >= 5 ? r.nullableString() : null;
  const protocolType = r.string();
  const protocols = r.array((r) => ({ name: r.string(), metadata: r.bytes() }));
  return { groupId, sessionTimeoutMs, rebalanceTimeoutMs, memberId, groupInstanceId, protocolType, protocols };
}

export function encodeJoinGroupResponse(w: Writer, version: number, res: JoinGroupResponse): void {
  if (version >= 2) w.int32(0);
  w.int16(res.errorCode).int32(res.generationId).string(res.protocolName).string(res.leader).string(res.memberId);
  w.array(res.members, (w, m) => {
    w.string(m.memberId);
    if (version >= 5) w.nullableString(m.groupInstanceId);
    w.bytes(m.metadata);
  });
}
