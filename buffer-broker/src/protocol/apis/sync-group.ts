/**
 * SyncGroup (key 14), v0-v3 (v4+ is flexible and not served).
 *   Request => group_id STRING generation_id INT32 member_id STRING group_instance_id NULLABLE_STRING (v3+)
 *     assignments[member_id STRING assignment BYTES]
 *   Response => throttle_time_ms INT32 (v1+) error_code INT16 assignment BYTES
 * Only the leader sends assignments; followers send an empty array.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface SyncGroupAssignment {
  memberId: string;
  assignment: Buffer;
}
export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  assignments: SyncGroupAssignment[];
}
export interface SyncGroupResponse {
  errorCode: number;
  assignment: Buffer;
}

export function decodeSyncGroupRequest(r: Reader, version: number): SyncGroupRequest {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  const groupInstanceId = version >= 3 ? r.nullableString() : null;
  const assignments = r.array((r) => ({ memberId: r.string(), assignment: r.bytes() }));
  return { groupId, generationId, memberId, groupInstanceId, assignments };
}

export function encodeSyncGroupResponse(w: Writer, version: number, res: SyncGroupResponse): void {
  if (version >= 1) w.int32(0);
  w.int16(res.errorCode).bytes(res.assignment);
}
