/**
 * ListGroups (key 16), v0-v2 (v3+ is flexible and not served).
 *   Request => (empty)
 *   Response => throttle_time_ms INT32 (v1+) error_code INT16 groups[group_id STRING protocol_type STRING]
 * protocol_type is "" for groups that only hold committed offsets.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface ListedGroup {
  groupId: string;
  protocolType: string;
}
export interface ListGroupsResponse {
  errorCode: number;
  groups: readonly ListedGroup[];
}

export function decodeListGroupsRequest(_r: Reader, _version: number): Record<string, never> {
  return {};
}

export function encodeListGroupsResponse(w: Writer, version: number, res: ListGroupsResponse): void {
  if (version >= 1) w.int32(0);
  w.int16(res.errorCode);
  w.array(res.groups, (w, g) => w.string(g.groupId).string(g.protocolType));
}
