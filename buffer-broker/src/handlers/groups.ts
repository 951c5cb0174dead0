/**
 * Consumer-group APIs: thin adapters between the codecs and the GroupCoordinator (which owns
 * every rule), plus InitProducerId.
 */
import { ErrorCode } from '../protocol/error-codes.ts';
import { decodeDescribeGroupsRequest, encodeDescribeGroupsResponse } from '../protocol/apis/describe-groups.ts';
import { decodeHeartbeatRequest, encodeHeartbeatResponse } from '../protocol/apis/heartbeat.ts';
import { decodeInitProducerIdRequest, encodeInitProducerIdResponse } from '../protocol/apis/init-producer-id.ts';
import { decodeJoinGroupRequest, encodeJoinGroupResponse } from '../protocol/apis/join-group.ts';
import { decodeLeaveGroupRequest, encodeLeaveGroupResponse } from '../protocol/apis/leave-group.ts';
import { decodeListGroupsRequest, encodeListGroupsResponse } from '../protocol/apis/list-groups.ts';
import { decodeOffsetCommitRequest, encodeOffsetCommitResponse, type OffsetCommitResponseTopic } from '../protocol/apis/offset-commit.ts';
import { decodeOffsetFetchRequest, encodeOffsetFetchResponse } from '../protocol/apis/offset-fetch.ts';
import { decodeSyncGroupRequest, encodeSyncGroupResponse } from '../protocol/apis/sync-group.ts';
import type { Handler } from './context.ts';

export const handleJoinGroup: Handler = async (ctx, version, r, w, info) => {
  const req = decodeJoinGroupRequest(r, version);
  const res = await ctx.groups.joinGroup({ ...req, clientId: info.clientId, clientHost: info.clientHost, requireKnownMemberId: version >= 4 });
  encodeJoinGroupResponse(w, version, res);
  return true;
};

export const handleSyncGroup: Handler = async (ctx, version, r, w) => {
  const res = await ctx.groups.syncGroup(decodeSyncGroupRequest(r, version));
  encodeSyncGroupResponse(w, version, res);
  return true;
};

export const handleHeartbeat: Handler = (ctx, version, r, w) => {
  encodeHeartbeatResponse(w, version, ctx.groups.heartbeat(decodeHeartbeatRequest(r, version)));
  return true;
};

export const handleLeaveGroup: Handler = (ctx, version, r, w) => {
  encodeLeaveGroupResponse(w, version, ctx.groups.leaveGroup(decodeLeaveGroupRequest(r, version)));
  return true;
};

export const handleOffsetCommit: Handler = async (ctx, version, r, w) => {
  const req = decodeOffsetCommitRequest(r, version);
  // Unknown topics or partitions are refused here, as Kafka does; the rest go to the coordinator.
  const unknown: OffsetCommitResponseTopic[] = [];
  const known = req.topics
    .map((t) => {
      const bad = t.partitions.filter((p) => !ctx.logs.getPartition(t.name, p.partitionIndex));
      if (bad.length > 0) unknown.push({ name: t.name, partitions: bad.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION })) });
      return { ...t, partitions: t.partitions.filter((p) => ctx.logs.getPartition(t.name, p.partitionIndex)) };
    })
    .filter((t) => t.partitions.length > 0);
  let topics: OffsetCommitResponseTopic[] = [];
  try {
    topics = (await ctx.groups.commitOffsets({ ...req, topics: known })).topics;
  } catch (err) {
    ctx.log.error({ err, group: req.groupId }, 'offset commit failed');
    topics = known.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: ErrorCode.KAFKA_STORAGE_ERROR })) }));
  }
  encodeOffsetCommitResponse(w, version, [...topics, ...unknown]);
  return true;
};

export const handleOffsetFetch: Handler = (ctx, version, r, w) => {
  encodeOffsetFetchResponse(w, version, ctx.groups.fetchOffsets(decodeOffsetFetchRequest(r, version)));
  return true;
};

export const handleDescribeGroups: Handler = (ctx, version, r, w) => {
  const req = decodeDescribeGroupsRequest(r, version);
  encodeDescribeGroupsResponse(w, version, ctx.groups.describeGroups(req.groups));
  return true;
};

export const handleListGroups: Handler = (ctx, version, r, w) => {
  decodeListGroupsRequest(r, version);
  encodeListGroupsResponse(w, version, ctx.groups.listGroups());
  return true;
};

export const handleInitProducerId: Handler = (ctx, version, r, w) => {
  const req = decodeInitProducerIdRequest(r, version);
  if (req.transactionalId !== null) {
    // Transactions are not supported: a transactional id gets an explicit refusal.
    encodeInitProducerIdResponse(w, version, { errorCode: ErrorCode.INVALID_TXN_STATE, producerId: -1, producerEpoch: -1 });
    return true;
  }
  let producerId: number;
  try {
    producerId = ctx.producerIds.allocate();
  } catch (err) {
    ctx.log.error({ err }, 'producer id allocation failed');
    encodeInitProducerIdResponse(w, version, { errorCode: ErrorCode.KAFKA_STORAGE_ERROR, producerId: -1, producerEpoch: -1 });
    return true;
  }
  encodeInitProducerIdResponse(w, version, { errorCode: ErrorCode.NONE, producerId, producerEpoch: 0 });
  return true;
};
