/**
 * The coordinator's inputs and results. Field names match the decoded requests and the response
 * shapes of protocol/apis/*, so a handler passes them through; the coordinator itself imports no
 * codec. Every errorCode is a Kafka error code (protocol/error-codes.ts).
 */

export const GroupState = {
  Empty: 'Empty',
  PreparingRebalance: 'PreparingRebalance',
  CompletingRebalance: 'CompletingRebalance',
  Stable: 'Stable',
  Dead: 'Dead',
} as const;
export type GroupStateName = (typeof GroupState)[keyof typeof GroupState];

export interface GroupProtocol {
  name: string;
  metadata: Buffer;
}

export interface JoinGroupInput {
  groupId: string;
  /** "" for a member joining for the first time. */
  memberId: string;
  /** Recorded and echoed; static membership (KIP-345) is not implemented, such members act as dynamic ones. */
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  /** < 0 (JoinGroup v0) means "use the session timeout". */
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: readonly GroupProtocol[];
  /** JoinGroup v4+: an empty member_id gets MEMBER_ID_REQUIRED and a fresh id to rejoin with. */
  requireKnownMemberId: boolean;
}

export interface JoinGroupMember {
  memberId: string;
  groupInstanceId: string | null;
  metadata: Buffer;
}

export interface JoinGroupResult {
  errorCode: number;
  /** -1 on errors. */
  generationId: number;
  protocolType: string | null;
  /** "" on errors and when no protocol is selected. */
  protocolName: string;
  leader: string;
  memberId: string;
  /** Non-empty only in the leader's response. */
  members: JoinGroupMember[];
}

export interface SyncGroupInput {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  /** SyncGroup v5+ only; checked against the group's when given. */
  protocolType?: string | null;
  protocolName?: string | null;
  assignments: readonly { memberId: string; assignment: Buffer }[];
}

export interface SyncGroupResult {
  errorCode: number;
  protocolType: string | null;
  protocolName: string | null;
  assignment: Buffer;
}

export interface HeartbeatInput {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

export interface HeartbeatResult {
  errorCode: number;
}

export interface LeaveGroupInput {
  groupId: string;
  /** One entry for LeaveGroup v0-v2. memberId "" with a groupInstanceId removes by instance id. */
  members: readonly { memberId: string; groupInstanceId: string | null }[];
}

export interface LeaveGroupResult {
  errorCode: number;
  members: { memberId: string; groupInstanceId: string | null; errorCode: number }[];
}

export interface OffsetCommitInput {
  groupId: string;
  /** < 0 for a commit outside group management (admin tools, manual assignment). */
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  topics: readonly {
    name: string;
    partitions: readonly {
      partitionIndex: number;
      committedOffset: number;
      committedLeaderEpoch: number;
      committedMetadata: string | null;
    }[];
  }[];
}

export interface OffsetCommitResult {
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

export interface OffsetFetchInput {
  groupId: string;
  /** null = every committed partition of the group. */
  topics: readonly { name: string; partitionIndexes: readonly number[] }[] | null;
}

export interface OffsetFetchPartition {
  partitionIndex: number;
  committedOffset: number;
  committedLeaderEpoch: number;
  metadata: string | null;
  errorCode: number;
}

export interface OffsetFetchResult {
  errorCode: number;
  topics: { name: string; partitions: OffsetFetchPartition[] }[];
}

export interface GroupMemberDescription {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  /** Empty unless the group is Stable. */
  memberMetadata: Buffer;
  /** Empty unless the group is Stable. */
  memberAssignment: Buffer;
}

export interface GroupDescription {
  errorCode: number;
  groupId: string;
  groupState: GroupStateName;
  protocolType: string;
  /** The selected protocol name when Stable, else "". */
  protocolData: string;
  members: GroupMemberDescription[];
}

export interface GroupListing {
  groupId: string;
  protocolType: string;
  groupState: GroupStateName;
}

export interface ListGroupsResult {
  errorCode: number;
  groups: GroupListing[];
}

export interface DeleteGroupResult {
  groupId: string;
  errorCode: number;
}
