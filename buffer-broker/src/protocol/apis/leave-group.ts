/**
 * LeaveGroup (key 13), v0-v3 (v4+ is flexible and not served).
 *   Request v0-v2 => group_id STRING member_id STRING
 *   Request v3 => group_id STRING members[member_id STRING group_instance_id NULLABLE_STRING]
 *   Response => throttle_time_ms INT32 (v1+) error_code INT16
 *     members[member_id STRING group_instance_id NULLABLE_STRING error_code INT16] (v3+)
 * Both request layouts decode to a members list (one entry for v0-v2). For v0-v2 the response has
 * only the top-level error: as in Kafka's LeaveGroupResponse, that is the top-level error if set,
 * else the first non-zero member error.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface LeaveGroupMember {
  memberId: string;
  groupInstanceId: string | null;
}
export interface LeaveGroupRequest {
  groupId: string;
  members: LeaveGroupMember[];
}
export interface LeaveGroupMemberResponse {
  memberId: string;
  groupInstanceId: string | null;
  errorCode: number;
}
export interface LeaveGroupResponse {
  errorCode: number;
  members: readonly LeaveGroupMemberResponse[];
}

export function decodeLeaveGroupRequest(r: Reader, version: number): LeaveGroupRequest {
  const groupId = r.string();
  if (version >= 3) {
    return { groupId, members: r.array((r) => ({ memberId: r.string(), groupInstanceId: r.nullableString() })) };
  }
  return { groupId, members: [{ memberId: r.string(), groupInstanceId: null }] };
}

export function encodeLeaveGroupResponse(w: Writer, version: number, res: LeaveGroupResponse): void {
  if (version >= 1) w.int32(0);
  if (version >= 3) {
    w.int16(res.errorCode);
    w.array(res.members, (w, m) => w.string(m.memberId).nullableString(m.groupInstanceId).int16(m.errorCode));
    return;
  }
  const memberError = res.members.find((m) => m.errorCode !== 0)?.errorCode ?? 0;
  w.int16(res.errorCode !== 0 ? res.errorCode : memberError);
}
