/**
 * Heartbeat (key 12), v0-v3 (v4+ is flexible and not served).
 *   Request => group_id STRING generation_id INT32 member_id STRING group_instance_id NULLABLE_STRING (v3+)
 *   Response => throttle_time_ms INT32 (v1+) error_code INT16
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

export function decodeHeartbeatRequest(r: Reader, version: number): HeartbeatRequest {
  const groupId = r.string();
  const generationId = r.int32();
  const memberId = r.string();
  const groupInstanceId = version >= 3 ? r.nullableString() : null;
  return { groupId, generationId, memberId, groupInstanceId };
}

export function encodeHeartbeatResponse(w: Writer, version: number, res: { errorCode: number }): void {
  if (version >= 1) w.int32(0);
  w.int16(res.errorCode);
}
