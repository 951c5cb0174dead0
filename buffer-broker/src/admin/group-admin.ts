/**
 * Operator view of consumer groups: committed offsets and lag per partition (in messages, and
 * in seconds from the timestamp of the oldest unconsumed record), and offset resets (earliest,
 * latest, by timestamp) for groups without members. Used by the admin HTTP API and /metrics.
 */
import { ErrorCode } from '../protocol/error-codes.ts';
import type { BrokerContext } from '../handlers/context.ts';

export interface PartitionLag {
  topic: string;
  partition: number;
  committedOffset: number;
  logEndOffset: number;
  lag: number;
  lagSeconds: number;
}

export interface GroupSummary {
  groupId: string;
  state: string;
  members: number;
  protocolType: string;
  lag: number;
  partitions: PartitionLag[];
}

export async function groupLag(ctx: BrokerContext, groupId: string, now = Date.now()): Promise<PartitionLag[]> {
  const out: PartitionLag[] = [];
  const committed = ctx.groups.fetchOffsets({ groupId, topics: null });
  for (const t of committed.topics) {
    for (const p of t.partitions) {
      const log = ctx.logs.getPartition(t.name, p.partitionIndex);
      if (!log) continue;
      const end = log.highWatermark;
      // Logical offsets clients may commit: -2 = earliest, -1 = latest (kafkajs resetOffsets does this).
      const position = p.committedOffset === -2 ? log.logStartOffset : p.committedOffset < 0 ? end : Math.max(p.committedOffset, log.logStartOffset);
      const lag = Math.max(0, end - position);
      let lagSeconds = 0;
      if (lag > 0) {
        const ts = await log.timestampAt(position);
        if (ts !== null && ts > 0) lagSeconds = Math.max(0, (now - ts) / 1000);
      }
      out.push({ topic: t.name, partition: p.partitionIndex, committedOffset: p.committedOffset, logEndOffset: end, lag, lagSeconds });
    }
  }
  return out.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
}

export async function listGroupSummaries(ctx: BrokerContext): Promise<GroupSummary[]> {
  const listed = ctx.groups.listGroups().groups;
  const described = ctx.groups.describeGroups(listed.map((g) => g.groupId));
  return Promise.all(
    described.map(async (d) => {
      const partitions = await groupLag(ctx, d.groupId);
      return {
        groupId: d.groupId,
        state: d.groupState,
        members: d.members.length,
        protocolType: d.protocolType,
        lag: partitions.reduce((n, p) => n + p.lag, 0),
        partitions,
      };
    }),
  );
}

export type ResetTarget = { to: 'earliest' } | { to: 'latest' } | { to: 'timestamp'; timestamp: number };

export class ResetError extends Error {
  constructor(
    readonly code: 'GROUP_HAS_MEMBERS' | 'UNKNOWN_TOPIC' | 'COMMIT_FAILED',
    message: string,
  ) {
    super(message);
  }
}

/** Sets the group's committed offsets of `topics` (default: every topic it has committed) to the target. */
export async function resetGroupOffsets(ctx: BrokerContext, groupId: string, target: ResetTarget, topics?: string[]): Promise<PartitionLag[]> {
  const state = ctx.groups.groupState(groupId);
  if (state !== 'Empty' && state !== 'Dead') throw new ResetError('GROUP_HAS_MEMBERS', `group ${groupId} is ${state}; stop its consumers first`);
  const names = topics ?? [...new Set(ctx.groups.fetchOffsets({ groupId, topics: null }).topics.map((t) => t.name))];
  const commit: { name: string; partitions: { partitionIndex: number; committedOffset: number; committedLeaderEpoch: number; committedMetadata: string | null }[] }[] = [];
  for (const name of names) {
    const topic = ctx.logs.topics.get(name);
    if (!topic) throw new ResetError('UNKNOWN_TOPIC', `unknown topic ${name}`);
    const partitions = [];
    for (const log of topic.partitions) {
      let offset: number;
      if (target.to === 'earliest') offset = log.logStartOffset;
      else if (target.to === 'latest') offset = log.highWatermark;
      else offset = (await log.offsetForTimestamp(target.timestamp))?.offset ?? log.highWatermark;
      partitions.push({ partitionIndex: log.partition, committedOffset: offset, committedLeaderEpoch: -1, committedMetadata: '' });
    }
    commit.push({ name, partitions });
  }
  const res = await ctx.groups.commitOffsets({ groupId, generationId: -1, memberId: '', groupInstanceId: null, topics: commit });
  const failed = res.topics.flatMap((t) => t.partitions).find((p) => p.errorCode !== ErrorCode.NONE);
  if (failed) throw new ResetError(failed.errorCode === ErrorCode.ILLEGAL_GENERATION || failed.errorCode === ErrorCode.REBALANCE_IN_PROGRESS ? 'GROUP_HAS_MEMBERS' : 'COMMIT_FAILED', `commit failed with Kafka error ${failed.errorCode}`);
  return (await groupLag(ctx, groupId)).filter((p) => names.includes(p.topic));
}
