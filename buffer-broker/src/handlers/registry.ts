/**
 * The APIs this broker serves, with the version ranges it advertises (Profile A of
 * shared/design/kafka-protocol.md). ApiVersions is answered from this table, so an API is
 * advertised exactly when it is registered here.
 */
import { ErrorCode } from '../protocol/error-codes.ts';
import { decodeApiVersionsRequest, encodeApiVersionsResponse } from '../protocol/apis/api-versions.ts';
import { decodeFindCoordinatorRequest, encodeFindCoordinatorResponse } from '../protocol/apis/find-coordinator.ts';
import type { ApiDef, Handler } from './context.ts';
import { NODE_ID } from './context.ts';
import { handleFetch } from './fetch.ts';
import {
  handleDescribeGroups,
  handleHeartbeat,
  handleInitProducerId,
  handleJoinGroup,
  handleLeaveGroup,
  handleListGroups,
  handleOffsetCommit,
  handleOffsetFetch,
  handleSyncGroup,
} from './groups.ts';
import { handleProduce } from './produce.ts';
import { handleCreateTopics, handleDeleteTopics, handleListOffsets, handleMetadata } from './topics.ts';

const NEVER = Number.POSITIVE_INFINITY;

const handleApiVersions: Handler = (ctx, version, r, w) => {
  decodeApiVersionsRequest(r, version);
  encodeApiVersionsResponse(w, version, ErrorCode.NONE, advertisedVersions(ctx.sasl !== null));
  return true;
};

const handleFindCoordinator: Handler = (ctx, version, r, w) => {
  const req = decodeFindCoordinatorRequest(r, version);
  const { host, port } = ctx.advertised();
  const valid = req.keyType === 0 || req.keyType === 1;
  encodeFindCoordinatorResponse(w, version, {
    errorCode: valid ? ErrorCode.NONE : ErrorCode.INVALID_REQUEST,
    errorMessage: valid ? null : `unknown key type ${req.keyType}`,
    nodeId: valid ? NODE_ID : -1,
    host: valid ? host : '',
    port: valid ? port : -1,
  });
  return true;
};

export const apis: ApiDef[] = [
  // Produce v0-2 and Fetch v0-3 are advertised for librdkafka's feature probes and refused per partition.
  { key: 0, name: 'Produce', minVersion: 0, maxVersion: 7, flexibleFrom: 9, handle: handleProduce },
  { key: 1, name: 'Fetch', minVersion: 0, maxVersion: 11, flexibleFrom: 12, handle: handleFetch },
  { key: 2, name: 'ListOffsets', minVersion: 1, maxVersion: 3, flexibleFrom: 6, handle: handleListOffsets },
  { key: 3, name: 'Metadata', minVersion: 1, maxVersion: 6, flexibleFrom: 9, handle: handleMetadata },
  { key: 8, name: 'OffsetCommit', minVersion: 2, maxVersion: 7, flexibleFrom: 8, handle: handleOffsetCommit },
  { key: 9, name: 'OffsetFetch', minVersion: 1, maxVersion: 5, flexibleFrom: 6, handle: handleOffsetFetch },
  { key: 10, name: 'FindCoordinator', minVersion: 0, maxVersion: 2, flexibleFrom: 3, handle: handleFindCoordinator },
  // Minimum 0 on the group APIs: librdkafka 2.0.2 enables consumer groups only if v0 is in range.
  { key: 11, name: 'JoinGroup', minVersion: 0, maxVersion: 5, flexibleFrom: 6, handle: handleJoinGroup },
  { key: 12, name: 'Heartbeat', minVersion: 0, maxVersion: 3, flexibleFrom: 4, handle: handleHeartbeat },
  { key: 13, name: 'LeaveGroup', minVersion: 0, maxVersion: 3, flexibleFrom: 4, handle: handleLeaveGroup },
  { key: 14, name: 'SyncGroup', minVersion: 0, maxVersion: 3, flexibleFrom: 4, handle: handleSyncGroup },
  { key: 15, name: 'DescribeGroups', minVersion: 0, maxVersion: 4, flexibleFrom: 5, handle: handleDescribeGroups },
  { key: 16, name: 'ListGroups', minVersion: 0, maxVersion: 2, flexibleFrom: 3, handle: handleListGroups },
  { key: 18, name: 'ApiVersions', minVersion: 0, maxVersion: 3, flexibleFrom: 3, handle: handleApiVersions },
  { key: 19, name: 'CreateTopics', minVersion: 0, maxVersion: 4, flexibleFrom: 5, handle: handleCreateTopics },
  { key: 20, name: 'DeleteTopics', minVersion: 0, maxVersion: 1, flexibleFrom: 4, handle: handleDeleteTopics },
  // Minimum 0: librdkafka 2.0.2's idempotence feature probe needs InitProducerId v0 in range.
  { key: 22, name: 'InitProducerId', minVersion: 0, maxVersion: 1, flexibleFrom: 2, handle: handleInitProducerId },
];

/**
 * The SASL APIs: answered by the connection itself (server/server.ts), since they change the
 * connection's state, and advertised only when SASL is on (kafka-protocol.md §0.2).
 */
export const saslApis = [
  { key: 17, name: 'SaslHandshake', minVersion: 0, maxVersion: 1 },
  { key: 36, name: 'SaslAuthenticate', minVersion: 0, maxVersion: 1 },
] as const;

const byKey = new Map(apis.map((a) => [a.key, a]));

export function lookupApi(key: number): ApiDef | undefined {
  return byKey.get(key);
}

export function advertisedVersions(sasl: boolean) {
  const served: readonly { key: number; minVersion: number; maxVersion: number }[] = sasl ? [...apis, ...saslApis].sort((a, b) => a.key - b.key) : apis;
  return served.map((a) => ({ apiKey: a.key, minVersion: a.minVersion, maxVersion: a.maxVersion }));
}

export { NEVER };
