/**
 * Classic-protocol consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup,
 * OffsetCommit validation, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups), after Kafka's
 * GroupCoordinator as summarised in shared/design/kafka-protocol.md §8.
 *
 * Owns: every group's membership, generation, leader, selected protocol and assignments, and the
 * timers of rebalances, pending syncs, member sessions and MEMBER_ID_REQUIRED ids.
 * Does not own: committed offsets (an injected OffsetStore), time (an injected Scheduler), the
 * wire (handlers decode/encode; field names line up with protocol/apis/*).
 *
 * Pure: no I/O, no real timers, no Date.now(); it must not import codecs, storage or the server.
 * Everything runs synchronously inside a call or a scheduler callback, so no interleaving exists
 * except across OffsetStore.put().
 *
 * Invariants:
 *  - every JoinGroup/SyncGroup promise is settled exactly once: by the call itself, by the end of
 *    the rebalance phase that held it, by the member's removal, by a newer request from the same
 *    member (REBALANCE_IN_PROGRESS), or by close() (NOT_COORDINATOR); none ever rejects;
 *  - a member holding a JoinGroup/SyncGroup is never expired by its session timer (the rebalance
 *    and pending-sync timers bound those waits instead);
 *  - protocol metadata and assignments are copied on the way in: request buffers may be views of
 *    a socket chunk, which a long-lived member must not pin;
 *  - state transitions: Empty → PreparingRebalance → (CompletingRebalance → Stable | Empty), any
 *    live state → PreparingRebalance, Empty → Dead (DeleteGroups); nothing leaves Dead.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode } from '../protocol/error-codes.ts';
import { EMPTY, Group, metadataFor, sameProtocols, type Member } from './group.ts';
import type { CommittedOffset, OffsetStore } from './offset-store.ts';
import type { Scheduler } from './scheduler.ts';
import {
  GroupState,
  type DeleteGroupResult,
  type GroupProtocol,
  type GroupDescription,
  type HeartbeatInput,
  type HeartbeatResult,
  type JoinGroupInput,
  type JoinGroupResult,
  type LeaveGroupInput,
  type LeaveGroupResult,
  type ListGroupsResult,
  type OffsetCommitInput,
  type OffsetCommitResult,
  type OffsetFetchInput,
  type OffsetFetchResult,
  type SyncGroupInput,
  type SyncGroupResult,
} from './types.ts';

export interface GroupCoordinatorConfig {
  /** group.min.session.timeout.ms */
  minSessionTimeoutMs: number;
  /** group.max.session.timeout.ms */
  maxSessionTimeoutMs: number;
  /** group.initial.rebalance.delay.ms: how long the first rebalance of an Empty group waits for more joiners. */
  initialRebalanceDelayMs: number;
  /** offset.metadata.max.bytes (compared with the string length, as Kafka does). */
  maxOffsetMetadataBytes: number;
}

export const DEFAULT_GROUP_COORDINATOR_CONFIG: Readonly<GroupCoordinatorConfig> = {
  minSessionTimeoutMs: 6_000,
  maxSessionTimeoutMs: 1_800_000,
  initialRebalanceDelayMs: 0,
  maxOffsetMetadataBytes: 4096,
};

export interface GroupCoordinatorOptions {
  scheduler: Scheduler;
  offsets: OffsetStore;
  config?: Partial<GroupCoordinatorConfig>;
  /** Member id for a new member; default `${clientId}-${uuid}` as in Kafka. */
  newMemberId?: (clientId: string) => string;
}

type ErrorCodeNumber = number;

export class GroupCoordinator {
  private readonly scheduler: Scheduler;
  private readonly offsets: OffsetStore;
  readonly config: Readonly<GroupCoordinatorConfig>;
  private readonly newMemberId: (clientId: string) => string;
  private readonly groups = new Map<string, Group>();
  private closed = false;

  constructor(opts: GroupCoordinatorOptions) {
    this.scheduler = opts.scheduler;
    this.offsets = opts.offsets;
    this.config = { ...DEFAULT_GROUP_COORDINATOR_CONFIG, ...opts.config };
    this.newMemberId = opts.newMemberId ?? ((clientId) => `${clientId}-${randomUUID()}`);
  }

  // ---------------------------------------------------------------------------------------------
  // JoinGroup

  /**
   * Resolves at once for errors, MEMBER_ID_REQUIRED and "current generation" answers; otherwise
   * the response is held until the join phase of the rebalance completes (all members rejoined,
   * the rebalance timeout, or the initial delay) and resolves then.
   */
  joinGroup(req: JoinGroupInput): Promise<JoinGroupResult> {
    return new Promise((resolve) => this.doJoin(req, resolve));
  }

  private doJoin(req: JoinGroupInput, respond: (res: JoinGroupResult) => void): void {
    const invalid = this.validateGroupId(req.groupId, false);
    if (invalid !== null) return respond(joinError(req.memberId, invalid));
    if (req.sessionTimeoutMs < this.config.minSessionTimeoutMs || req.sessionTimeoutMs > this.config.maxSessionTimeoutMs) {
      return respond(joinError(req.memberId, ErrorCode.INVALID_SESSION_TIMEOUT));
    }
    const isNew = req.memberId === '';
    const group = this.findGroup(req.groupId) ?? (isNew ? this.createGroup(req.groupId) : undefined);
    if (group === undefined) return respond(joinError(req.memberId, ErrorCode.UNKNOWN_MEMBER_ID));
    if (group.is(GroupState.Dead)) return respond(joinError(req.memberId, ErrorCode.COORDINATOR_NOT_AVAILABLE));

    if (isNew) this.joinNewMember(group, req, respond);
    else this.joinKnownMember(group, req, respond);

    if (group.is(GroupState.PreparingRebalance)) this.tryCompleteJoin(group);
  }

  private joinNewMember(group: Group, req: JoinGroupInput, respond: (res: JoinGroupResult) => void): void {
    if (!group.supportsProtocols(null, req.protocolType, req.protocols)) {
      return respond(joinError(req.memberId, ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
    }
    const memberId = this.newMemberId(req.clientId);
    if (req.requireKnownMemberId && req.groupInstanceId === null) {
      // KIP-394: the id is only handed out; the member exists once it rejoins with it.
      const cancel = this.scheduler.schedule(req.sessionTimeoutMs, () => this.expirePendingMember(group, memberId));
      group.pendingMembers.set(memberId, cancel);
      return respond(joinError(memberId, ErrorCode.MEMBER_ID_REQUIRED));
    }
    this.addMemberAndRebalance(group, memberId, req, respond);
  }

  private joinKnownMember(group: Group, req: JoinGroupInput, respond: (res: JoinGroupResult) => void): void {
    const memberId = req.memberId;
    if (!group.supportsProtocols(memberId, req.protocolType, req.protocols)) {
      return respond(joinError(memberId, ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
    }
    const pending = group.pendingMembers.get(memberId);
    if (pending !== undefined) {
      pending();
      group.pendingMembers.delete(memberId);
      return this.addMemberAndRebalance(group, memberId, req, respond);
    }
    const member = group.members.get(memberId);
    if (member === undefined) return respond(joinError(memberId, ErrorCode.UNKNOWN_MEMBER_ID));

    switch (group.state) {
      case GroupState.PreparingRebalance:
        return this.updateMemberAndRebalance(group, member, req, respond);
      case GroupState.CompletingRebalance:
        // Same metadata: the member probably lost the JoinGroup response; repeat it.
        if (sameProtocols(member.protocols, req.protocols)) {
          this.touch(member);
          return respond(this.joinResult(group, member));
        }
        return this.updateMemberAndRebalance(group, member, req, respond);
      case GroupState.Stable:
        // The leader rejoins to force a rebalance (e.g. new partitions); a follower only when its metadata changed.
        if (group.isLeader(memberId) || !sameProtocols(member.protocols, req.protocols)) {
          return this.updateMemberAndRebalance(group, member, req, respond);
        }
        this.touch(member);
        return respond(this.joinResult(group, member));
      case GroupState.Empty:
      case GroupState.Dead:
        return respond(joinError(memberId, ErrorCode.UNKNOWN_MEMBER_ID));
    }
  }

  private addMemberAndRebalance(group: Group, memberId: string, req: JoinGroupInput, respond: (res: JoinGroupResult) => void): void {
    const member: Member = {
      memberId,
      groupInstanceId: req.groupInstanceId,
      clientId: req.clientId,
      clientHost: req.clientHost,
      sessionTimeoutMs: req.sessionTimeoutMs,
      rebalanceTimeoutMs: req.rebalanceTimeoutMs < 0 ? req.sessionTimeoutMs : req.rebalanceTimeoutMs,
      protocolType: req.protocolType,
      protocols: copyProtocols(req.protocols),
      assignment: EMPTY,
      awaitingJoin: respond,
      awaitingSync: null,
      sessionDeadline: 0,
      sessionTimer: null,
    };
    group.add(member);
    this.touch(member);
    this.armSessionTimer(group, member, member.sessionTimeoutMs);
    // A joiner during the initial delay earns the group another delay period (up to the rebalance timeout).
    if (group.initialDelay !== null) group.initialDelay.newMemberAdded = true;
    this.maybePrepareRebalance(group);
  }

  private updateMemberAndRebalance(group: Group, member: Member, req: JoinGroupInput, respond: (res: JoinGroupResult) => void): void {
    // A newer JoinGroup from the same member supersedes a held one; the old one is told to rejoin.
    member.awaitingJoin?.(joinError(member.memberId, ErrorCode.REBALANCE_IN_PROGRESS));
    member.awaitingJoin = respond;
    member.protocols = copyProtocols(req.protocols);
    member.protocolType = req.protocolType;
    member.sessionTimeoutMs = req.sessionTimeoutMs;
    member.rebalanceTimeoutMs = req.rebalanceTimeoutMs < 0 ? req.sessionTimeoutMs : req.rebalanceTimeoutMs;
    member.groupInstanceId = req.groupInstanceId;
    if (group.members.size === 1) group.protocolType = req.protocolType;
    this.touch(member);
    this.maybePrepareRebalance(group);
  }

  private joinResult(group: Group, member: Member): JoinGroupResult {
    const protocolName = group.protocolName ?? '';
    return {
      errorCode: ErrorCode.NONE,
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName,
      leader: group.leaderId ?? '',
      memberId: member.memberId,
      members: group.isLeader(member.memberId)
        ? [...group.members.values()].map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, metadata: metadataFor(m, protocolName) }))
        : [],
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Rebalance phases

  private maybePrepareRebalance(group: Group): void {
    if (group.is(GroupState.Stable) || group.is(GroupState.CompletingRebalance) || group.is(GroupState.Empty)) {
      this.prepareRebalance(group);
    }
  }

  private prepareRebalance(group: Group): void {
    if (group.is(GroupState.CompletingRebalance)) {
      // Members waiting for their assignment must rejoin instead.
      for (const m of group.members.values()) {
        m.assignment = EMPTY;
        this.answerSync(m, syncError(ErrorCode.REBALANCE_IN_PROGRESS));
      }
    }
    this.cancelSyncTimer(group);
    group.pendingSync.clear();
    const wasEmpty = group.is(GroupState.Empty);
    // protocolName keeps the previous generation's until the next one is formed, as in Kafka.
    group.state = GroupState.PreparingRebalance;
    const rebalanceTimeoutMs = group.rebalanceTimeoutMs();
    const delay = this.config.initialRebalanceDelayMs;
    if (wasEmpty && delay > 0) {
      group.initialDelay = { remainingMs: Math.max(rebalanceTimeoutMs - delay, 0), newMemberAdded: false };
      group.joinTimer = this.scheduler.schedule(delay, () => this.onInitialDelayExpired(group));
      return;
    }
    group.initialDelay = null;
    group.joinTimer = this.scheduler.schedule(rebalanceTimeoutMs, () => this.completeJoin(group));
    this.tryCompleteJoin(group);
  }

  private onInitialDelayExpired(group: Group): void {
    const d = group.initialDelay;
    if (d === null || !group.is(GroupState.PreparingRebalance)) return;
    if (d.newMemberAdded && d.remainingMs > 0) {
      const delay = Math.min(this.config.initialRebalanceDelayMs, d.remainingMs);
      d.remainingMs = Math.max(d.remainingMs - this.config.initialRebalanceDelayMs, 0);
      d.newMemberAdded = false;
      group.joinTimer = this.scheduler.schedule(delay, () => this.onInitialDelayExpired(group));
      return;
    }
    this.completeJoin(group);
  }

  /** Completes the join phase early once every member has rejoined (never during the initial delay). */
  private tryCompleteJoin(group: Group): void {
    if (group.is(GroupState.PreparingRebalance) && group.initialDelay === null && group.allMembersJoined()) this.completeJoin(group);
  }

  /** End of the join phase: drop members that did not rejoin, start the next generation, answer held joins. */
  private completeJoin(group: Group): void {
    if (!group.is(GroupState.PreparingRebalance)) return;
    this.cancelJoinTimer(group);
    group.initialDelay = null;
    for (const m of [...group.members.values()]) {
      if (m.awaitingJoin === null) this.dropMember(group, m);
    }
    group.generationId++;
    if (group.members.size === 0) {
      group.state = GroupState.Empty;
      group.protocolName = null;
      return;
    }
    group.protocolName = group.selectProtocol();
    group.state = GroupState.CompletingRebalance;
    for (const m of group.members.values()) {
      const respond = m.awaitingJoin;
      m.awaitingJoin = null;
      this.touch(m);
      respond?.(this.joinResult(group, m));
      group.pendingSync.add(m.memberId);
    }
    const generation = group.generationId;
    group.syncTimer = this.scheduler.schedule(group.rebalanceTimeoutMs(), () => this.onPendingSyncExpired(group, generation));
  }

  /** Members of this generation that never sent SyncGroup are removed, and the group rebalances. */
  private onPendingSyncExpired(group: Group, generation: number): void {
    group.syncTimer = null;
    if (group.generationId !== generation) return;
    if (!group.is(GroupState.CompletingRebalance) && !group.is(GroupState.Stable)) return;
    if (group.pendingSync.size === 0) return;
    for (const id of [...group.pendingSync]) {
      const m = group.members.get(id);
      if (m !== undefined) this.dropMember(group, m);
    }
    this.prepareRebalance(group);
  }

  // ---------------------------------------------------------------------------------------------
  // SyncGroup

  /**
   * Resolves at once except in CompletingRebalance, where it is held until the leader's SyncGroup
   * arrives (then every held SyncGroup gets its assignment) or a new rebalance starts
   * (REBALANCE_IN_PROGRESS).
   */
  syncGroup(req: SyncGroupInput): Promise<SyncGroupResult> {
    return new Promise((resolve) => this.doSync(req, resolve));
  }

  private doSync(req: SyncGroupInput, respond: (res: SyncGroupResult) => void): void {
    const invalid = this.validateGroupId(req.groupId, false);
    if (invalid !== null) return respond(syncError(invalid));
    const group = this.findGroup(req.groupId);
    if (group === undefined) return respond(syncError(ErrorCode.UNKNOWN_MEMBER_ID));
    if (group.is(GroupState.Dead)) return respond(syncError(ErrorCode.COORDINATOR_NOT_AVAILABLE));
    const member = group.members.get(req.memberId);
    if (member === undefined) return respond(syncError(ErrorCode.UNKNOWN_MEMBER_ID));
    if (req.generationId !== group.generationId) return respond(syncError(ErrorCode.ILLEGAL_GENERATION));
    if ((req.protocolType != null && req.protocolType !== group.protocolType) || (req.protocolName != null && req.protocolName !== group.protocolName)) {
      return respond(syncError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
    }
    switch (group.state) {
      case GroupState.Empty:
      case GroupState.Dead:
        return respond(syncError(ErrorCode.UNKNOWN_MEMBER_ID));
      case GroupState.PreparingRebalance:
        return respond(syncError(ErrorCode.REBALANCE_IN_PROGRESS));
      case GroupState.CompletingRebalance: {
        this.answerSync(member, syncError(ErrorCode.REBALANCE_IN_PROGRESS));
        member.awaitingSync = respond;
        group.pendingSync.delete(member.memberId);
        this.touch(member);
        if (group.isLeader(member.memberId)) {
          const given = new Map(req.assignments.map((a) => [a.memberId, a.assignment]));
          for (const m of group.members.values()) {
            const assignment = given.get(m.memberId);
            m.assignment = assignment === undefined || assignment.length === 0 ? EMPTY : Buffer.from(assignment);
          }
          group.state = GroupState.Stable;
          for (const m of group.members.values()) {
            if (m.awaitingSync === null) continue;
            this.touch(m);
            this.answerSync(m, { errorCode: ErrorCode.NONE, protocolType: group.protocolType, protocolName: group.protocolName, assignment: m.assignment });
          }
        }
        return;
      }
      case GroupState.Stable:
        group.pendingSync.delete(member.memberId);
        this.touch(member);
        return respond({ errorCode: ErrorCode.NONE, protocolType: group.protocolType, protocolName: group.protocolName, assignment: member.assignment });
    }
  }

  private answerSync(member: Member, res: SyncGroupResult): void {
    const respond = member.awaitingSync;
    if (respond === null) return;
    member.awaitingSync = null;
    respond(res);
  }

  // ---------------------------------------------------------------------------------------------
  // Heartbeat

  heartbeat(req: HeartbeatInput): HeartbeatResult {
    const invalid = this.validateGroupId(req.groupId, false);
    if (invalid !== null) return { errorCode: invalid };
    const group = this.findGroup(req.groupId);
    if (group === undefined) return { errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
    if (group.is(GroupState.Dead)) return { errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE };
    const member = group.members.get(req.memberId);
    if (member === undefined) return { errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
    if (req.generationId !== group.generationId) return { errorCode: ErrorCode.ILLEGAL_GENERATION };
    switch (group.state) {
      case GroupState.Empty:
      case GroupState.Dead:
        return { errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
      case GroupState.PreparingRebalance:
        // The signal to rejoin.
        this.touch(member);
        return { errorCode: ErrorCode.REBALANCE_IN_PROGRESS };
      case GroupState.CompletingRebalance:
      case GroupState.Stable:
        this.touch(member);
        return { errorCode: ErrorCode.NONE };
    }
  }

  // ---------------------------------------------------------------------------------------------
  // LeaveGroup

  leaveGroup(req: LeaveGroupInput): LeaveGroupResult {
    const invalid = this.validateGroupId(req.groupId, false);
    if (invalid !== null) return { errorCode: invalid, members: [] };
    const group = this.findGroup(req.groupId);
    const result = (m: { memberId: string; groupInstanceId: string | null }, errorCode: ErrorCodeNumber) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      errorCode,
    });
    if (group === undefined) return { errorCode: ErrorCode.NONE, members: req.members.map((m) => result(m, ErrorCode.UNKNOWN_MEMBER_ID)) };
    if (group.is(GroupState.Dead)) return { errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE, members: [] };
    const members = req.members.map((leaving) => {
      const cancelPending = group.pendingMembers.get(leaving.memberId);
      if (cancelPending !== undefined) {
        cancelPending();
        group.pendingMembers.delete(leaving.memberId);
        this.tryCompleteJoin(group);
        return result(leaving, ErrorCode.NONE);
      }
      const member =
        leaving.memberId === '' && leaving.groupInstanceId !== null ? group.findByInstanceId(leaving.groupInstanceId) : group.members.get(leaving.memberId);
      if (member === undefined) return result(leaving, ErrorCode.UNKNOWN_MEMBER_ID);
      this.removeMemberAndUpdateGroup(group, member);
      return result(leaving, ErrorCode.NONE);
    });
    return { errorCode: ErrorCode.NONE, members };
  }

  // ---------------------------------------------------------------------------------------------
  // Offsets

  /**
   * Validates the commit against the group (§8.7) synchronously, then stores the accepted
   * partitions and resolves once OffsetStore.put() has made them durable. Rejects only if put()
   * rejects (the handler maps that to a per-partition error).
   */
  async commitOffsets(req: OffsetCommitInput): Promise<OffsetCommitResult> {
    const refusal = this.validateCommit(req);
    if (refusal !== null) return allPartitions(req, refusal);
    const now = this.scheduler.now();
    const accepted: CommittedOffset[] = [];
    const topics = req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        const metadata = p.committedMetadata ?? '';
        if (metadata.length > this.config.maxOffsetMetadataBytes) return { partitionIndex: p.partitionIndex, errorCode: ErrorCode.OFFSET_METADATA_TOO_LARGE };
        accepted.push({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch, metadata, commitTimestampMs: now });
        return { partitionIndex: p.partitionIndex, errorCode: ErrorCode.NONE };
      }),
    }));
    await this.offsets.put(req.groupId, accepted);
    return { topics };
  }

  private validateCommit(req: OffsetCommitInput): ErrorCodeNumber | null {
    const invalid = this.validateGroupId(req.groupId, true);
    if (invalid !== null) return invalid;
    let group = this.findGroup(req.groupId);
    if (group === undefined) {
      // A group not managed by this coordinator (admin tools, manual assignment) may commit with generation -1.
      if (req.generationId >= 0) return ErrorCode.ILLEGAL_GENERATION;
      group = this.createGroup(req.groupId);
    }
    if (group.is(GroupState.Dead)) return ErrorCode.COORDINATOR_NOT_AVAILABLE;
    if (req.generationId < 0 && group.is(GroupState.Empty)) return null;
    const member = group.members.get(req.memberId);
    if (member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (req.generationId !== group.generationId) return ErrorCode.ILLEGAL_GENERATION;
    switch (group.state) {
      case GroupState.Stable:
      case GroupState.PreparingRebalance:
        // kafkajs commits after a heartbeat said REBALANCE_IN_PROGRESS, before rejoining.
        this.touch(member);
        return null;
      case GroupState.CompletingRebalance:
        return ErrorCode.REBALANCE_IN_PROGRESS;
      case GroupState.Empty:
      case GroupState.Dead:
        return ErrorCode.UNKNOWN_MEMBER_ID;
    }
  }

  /** Answers regardless of the group's state; partitions without a commit get offset -1, metadata "". */
  fetchOffsets(req: OffsetFetchInput): OffsetFetchResult {
    const invalid = this.validateGroupId(req.groupId, true) ?? (this.findGroup(req.groupId)?.is(GroupState.Dead) ? ErrorCode.COORDINATOR_NOT_AVAILABLE : null);
    if (invalid !== null) {
      // OffsetFetch v0-v1 carry no top-level error: every requested partition gets it.
      return {
        errorCode: invalid,
        topics: (req.topics ?? []).map((t) => ({ name: t.name, partitions: t.partitionIndexes.map((p) => noOffset(p, invalid)) })),
      };
    }
    if (req.topics === null) {
      const byTopic = new Map<string, OffsetFetchResult['topics'][number]>();
      const all = this.offsets.list(req.groupId).sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
      for (const o of all) {
        let t = byTopic.get(o.topic);
        if (t === undefined) {
          t = { name: o.topic, partitions: [] };
          byTopic.set(o.topic, t);
        }
        t.partitions.push({ partitionIndex: o.partition, committedOffset: o.offset, committedLeaderEpoch: o.leaderEpoch, metadata: o.metadata, errorCode: ErrorCode.NONE });
      }
      return { errorCode: ErrorCode.NONE, topics: [...byTopic.values()] };
    }
    return {
      errorCode: ErrorCode.NONE,
      topics: req.topics.map((t) => ({
        name: t.name,
        partitions: t.partitionIndexes.map((p) => {
          const o = this.offsets.get(req.groupId, t.name, p);
          if (o === undefined) return noOffset(p, ErrorCode.NONE);
          return { partitionIndex: p, committedOffset: o.offset, committedLeaderEpoch: o.leaderEpoch, metadata: o.metadata, errorCode: ErrorCode.NONE };
        }),
      })),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // DescribeGroups / ListGroups / DeleteGroups

  /** Unknown groups are described as error 0, state Dead (DescribeGroups v0-v5 semantics). */
  describeGroups(groupIds: readonly string[]): GroupDescription[] {
    return groupIds.map((groupId) => {
      const invalid = this.validateGroupId(groupId, true);
      const group = invalid === null ? this.findGroup(groupId) : undefined;
      if (invalid !== null || group === undefined) {
        return { errorCode: invalid ?? ErrorCode.NONE, groupId, groupState: GroupState.Dead, protocolType: '', protocolData: '', members: [] };
      }
      const stable = group.is(GroupState.Stable);
      const protocol = stable ? (group.protocolName ?? '') : '';
      return {
        errorCode: ErrorCode.NONE,
        groupId,
        groupState: group.state,
        protocolType: group.protocolType ?? '',
        protocolData: protocol,
        members: group.is(GroupState.Dead)
          ? []
          : [...group.members.values()].map((m) => ({
              memberId: m.memberId,
              groupInstanceId: m.groupInstanceId,
              clientId: m.clientId,
              clientHost: m.clientHost,
              memberMetadata: stable ? metadataFor(m, protocol) : EMPTY,
              memberAssignment: stable ? m.assignment : EMPTY,
            })),
      };
    });
  }

  /** Every live group, including groups that only hold committed offsets (protocol type ""). */
  listGroups(): ListGroupsResult {
    if (this.closed) return { errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE, groups: [] };
    const ids = new Set([...this.groups.keys(), ...this.offsets.groupIds()]);
    const groups: ListGroupsResult['groups'] = [];
    for (const groupId of [...ids].sort()) {
      const group = this.findGroup(groupId);
      if (group === undefined || group.is(GroupState.Dead)) continue;
      groups.push({ groupId, protocolType: group.protocolType ?? '', groupState: group.state });
    }
    return { errorCode: ErrorCode.NONE, groups };
  }

  /** Deletes Empty groups and their offsets; groups with members answer NON_EMPTY_GROUP. */
  async deleteGroups(groupIds: readonly string[]): Promise<DeleteGroupResult[]> {
    const results: DeleteGroupResult[] = [];
    const deletions: Promise<void>[] = [];
    for (const groupId of groupIds) {
      const invalid = this.validateGroupId(groupId, true);
      const group = invalid === null ? this.findGroup(groupId) : undefined;
      let errorCode: ErrorCodeNumber;
      if (invalid !== null) errorCode = invalid;
      else if (group === undefined || group.is(GroupState.Dead)) errorCode = ErrorCode.GROUP_ID_NOT_FOUND;
      else if (!group.is(GroupState.Empty)) errorCode = ErrorCode.NON_EMPTY_GROUP;
      else {
        this.killGroup(group);
        deletions.push(this.offsets.deleteGroup(groupId));
        errorCode = ErrorCode.NONE;
      }
      results.push({ groupId, errorCode });
    }
    await Promise.all(deletions);
    return results;
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle and introspection

  /**
   * Shutdown: answers every held JoinGroup/SyncGroup with NOT_COORDINATOR (clients look the
   * coordinator up again), cancels every timer; later calls answer COORDINATOR_NOT_AVAILABLE.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const group of this.groups.values()) {
      for (const m of group.members.values()) {
        this.cancelSessionTimer(m);
        const join = m.awaitingJoin;
        m.awaitingJoin = null;
        join?.(joinError(m.memberId, ErrorCode.NOT_COORDINATOR));
        this.answerSync(m, syncError(ErrorCode.NOT_COORDINATOR));
      }
      this.cancelGroupTimers(group);
    }
  }

  /** State of a group as DescribeGroups would report it (Dead when unknown). */
  groupState(groupId: string): GroupDescription['groupState'] {
    return this.findGroup(groupId)?.state ?? GroupState.Dead;
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  /** Kafka validateGroupStatus for a single node whose groups are always loaded. */
  private validateGroupId(groupId: string, emptyAllowed: boolean): ErrorCodeNumber | null {
    if (this.closed) return ErrorCode.COORDINATOR_NOT_AVAILABLE;
    if (groupId === '' && !emptyAllowed) return ErrorCode.INVALID_GROUP_ID;
    return null;
  }

  /** A group known in memory, or an Empty one materialised because it has committed offsets (e.g. after a restart). */
  private findGroup(groupId: string): Group | undefined {
    const g = this.groups.get(groupId);
    if (g !== undefined) return g;
    return this.offsets.list(groupId).length > 0 ? this.createGroup(groupId) : undefined;
  }

  private createGroup(groupId: string): Group {
    const g = new Group(groupId);
    this.groups.set(groupId, g);
    return g;
  }

  /** Removes a member and moves the group on: a rebalance, or completing the one in progress. */
  private removeMemberAndUpdateGroup(group: Group, member: Member): void {
    this.dropMember(group, member);
    switch (group.state) {
      case GroupState.Stable:
      case GroupState.CompletingRebalance:
        return this.prepareRebalance(group);
      case GroupState.PreparingRebalance:
        return this.tryCompleteJoin(group);
      case GroupState.Empty:
      case GroupState.Dead:
        return;
    }
  }

  /** Removes a member without changing the group's state; its held requests get UNKNOWN_MEMBER_ID. */
  private dropMember(group: Group, member: Member): void {
    this.cancelSessionTimer(member);
    group.remove(member.memberId);
    const join = member.awaitingJoin;
    member.awaitingJoin = null;
    join?.(joinError('', ErrorCode.UNKNOWN_MEMBER_ID));
    this.answerSync(member, syncError(ErrorCode.UNKNOWN_MEMBER_ID));
  }

  private expirePendingMember(group: Group, memberId: string): void {
    if (!group.pendingMembers.delete(memberId)) return;
    this.tryCompleteJoin(group);
  }

  /** Any valid request from a member proves it alive for another session timeout. */
  private touch(member: Member): void {
    member.sessionDeadline = this.scheduler.now() + member.sessionTimeoutMs;
  }

  private armSessionTimer(group: Group, member: Member, delayMs: number): void {
    member.sessionTimer = this.scheduler.schedule(delayMs, () => this.onSessionTimer(group, member));
  }

  private onSessionTimer(group: Group, member: Member): void {
    member.sessionTimer = null;
    if (group.members.get(member.memberId) !== member) return;
    const now = this.scheduler.now();
    if (member.awaitingJoin !== null || member.awaitingSync !== null) {
      // Waiting on us, not silent: the rebalance / pending-sync timers bound this wait.
      this.touch(member);
      return this.armSessionTimer(group, member, member.sessionTimeoutMs);
    }
    if (now < member.sessionDeadline) return this.armSessionTimer(group, member, member.sessionDeadline - now);
    this.removeMemberAndUpdateGroup(group, member);
  }

  private cancelSessionTimer(member: Member): void {
    member.sessionTimer?.();
    member.sessionTimer = null;
  }

  private cancelJoinTimer(group: Group): void {
    group.joinTimer?.();
    group.joinTimer = null;
  }

  private cancelSyncTimer(group: Group): void {
    group.syncTimer?.();
    group.syncTimer = null;
  }

  private cancelGroupTimers(group: Group): void {
    this.cancelJoinTimer(group);
    this.cancelSyncTimer(group);
    for (const cancel of group.pendingMembers.values()) cancel();
    group.pendingMembers.clear();
  }

  private killGroup(group: Group): void {
    this.cancelGroupTimers(group);
    group.state = GroupState.Dead;
    this.groups.delete(group.groupId);
  }
}

function joinError(memberId: string, errorCode: ErrorCodeNumber): JoinGroupResult {
  return { errorCode, generationId: -1, protocolType: null, protocolName: '', leader: '', memberId, members: [] };
}

function copyProtocols(protocols: readonly GroupProtocol[]): GroupProtocol[] {
  return protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) }));
}

function syncError(errorCode: ErrorCodeNumber): SyncGroupResult {
  return { errorCode, protocolType: null, protocolName: null, assignment: EMPTY };
}

function noOffset(partitionIndex: number, errorCode: ErrorCodeNumber) {
  return { partitionIndex, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode };
}

function allPartitions(req: OffsetCommitInput, errorCode: ErrorCodeNumber): OffsetCommitResult {
  return { topics: req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode })) })) };
}
