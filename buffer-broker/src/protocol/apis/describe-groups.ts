/**
 * DescribeGroups (key 15), v0-v4 (v5+ is flexible and not served).
 *   Request => groups[STRING] include_authorized_operations BOOLEAN (v3+)
 *   Response => throttle_time_ms INT32 (v1+)
 *     groups[error_code INT16 group_id STRING group_state STRING protocol_type STRING protocol_data STRING
 *       members[member_id STRING group_instance_id NULLABLE_STRING (v4+) client_id STRING client_host STRING
 *         member_metadata BYTES member_assignment BYTES]
 *       authorized_operations INT32 (v3+)]
 * An unknown group is described as error 0, state "Dead", empty strings and no members (v0-v5).
 * authorized_operations defaults to INT32_MIN, Kafka's "not requested / unknown".
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export const AUTHORIZED_OPERATIONS_OMITTED = -2147483648;

export interface DescribeGroupsRequest {
  groups: string[];
  includeAuthorizedOperations: boolean;
}
export interface DescribedGroupMember {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  memberMetadata: Buffer;
  memberAssignment: Buffer;
}
export interface DescribedGroup {
  errorCode: number;
  groupId: string;
  groupState: string;
  protocolType: string;
  protocolData: string;
  members: readonly DescribedGroupMember[];
  authorizedOperations?: number;
}

export function decodeDescribeGroupsRequest(r: Reader, version: number): DescribeGroupsRequest {
  const groups = r.array((r) => r.string());
  const includeAuthorizedOperations = version >= 3 ? r.bool() : false;
  return { groups, includeAuthorizedOperations };
}

export function encodeDescribeGroupsResponse(w: Writer, version: number, groups: readonly DescribedGroup[]): void {
  if (version >= 1) w.int32(0);
  w.array(groups, (w, g) => {
    w.int16(g.errorCode).string(g.groupId).string(g.groupState).string(g.protocolType).string(g.protocolData);
    w.array(g.members, (w, m) => {
      w.string(m.memberId);
      if (version >= 4) w.nullableString(m.groupInstanceId);
      w.string(m.clientId).string(m.clientHost).bytes(m.memberMetadata).bytes(m.memberAssignment);
    });
    if (version >= 3) w.int32(g.authorizedOperations ?? AUTHORIZED_OPERATIONS_OMITTED);
  });
}
