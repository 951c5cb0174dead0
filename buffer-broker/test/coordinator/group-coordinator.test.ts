import { describe, expect, it } from 'vitest';
import { GroupCoordinator } from '../../src/coordinator/group-coordinator.ts';
import { ErrorCode } from '../../src/protocol/error-codes.ts';
import { GroupState, type GroupProtocol } from '../../src/coordinator/types.ts';
import { REBALANCE_MS, SESSION_MS, flush, formGroup, joinReq, protocols, setup, track } from './harness.ts';

const DELAY = 3_000;

const hb = (t: ReturnType<typeof setup>, memberId: string, generationId: number, groupId = 'g') =>
  t.coord.heartbeat({ groupId, generationId, memberId, groupInstanceId: null }).errorCode;

const commit = (t: ReturnType<typeof setup>, memberId: string, generationId: number, offset: number, groupId = 'g') =>
  t.coord.commitOffsets({
    groupId,
    generationId,
    memberId,
    groupInstanceId: null,
    topics: [{ name: 't', partitions: [{ partitionIndex: 0, committedOffset: offset, committedLeaderEpoch: -1, committedMetadata: null }] }],
  });

const commitError = async (t: ReturnType<typeof setup>, memberId: string, generationId: number, offset: number, groupId = 'g') =>
  (await commit(t, memberId, generationId, offset, groupId)).topics[0].partitions[0].errorCode;

const committed = (t: ReturnType<typeof setup>, groupId = 'g') =>
  t.coord.fetchOffsets({ groupId, topics: [{ name: 't', partitionIndexes: [0] }] }).topics[0].partitions[0].committedOffset;

describe('join, sync, stable', () => {
  it('a single member joins, leads, syncs its own assignment and stays Stable while heartbeating', async () => {
    const t = setup();
    const join = await t.coord.joinGroup(joinReq({ clientId: 'a' }));
    expect(join).toMatchObject({ errorCode: 0, generationId: 1, protocolName: 'RoundRobinAssigner', leader: 'a-1', memberId: 'a-1' });
    expect(join.members).toEqual([{ memberId: 'a-1', groupInstanceId: null, metadata: Buffer.from('meta:RoundRobinAssigner') }]);
    expect(t.coord.groupState('g')).toBe(GroupState.CompletingRebalance);

    const sync = await t.coord.syncGroup({
      groupId: 'g',
      generationId: 1,
      memberId: 'a-1',
      groupInstanceId: null,
      assignments: [{ memberId: 'a-1', assignment: Buffer.from('all') }],
    });
    expect(sync).toMatchObject({ errorCode: 0, protocolType: 'consumer', protocolName: 'RoundRobinAssigner', assignment: Buffer.from('all') });
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);

    for (let i = 0; i < 20; i++) {
      t.scheduler.advance(10_000);
      expect(hb(t, 'a-1', 1)).toBe(ErrorCode.NONE);
    }
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);
    const [d] = t.coord.describeGroups(['g']);
    expect(d).toEqual({
      errorCode: 0,
      groupId: 'g',
      groupState: 'Stable',
      protocolType: 'consumer',
      protocolData: 'RoundRobinAssigner',
      members: [
        {
          memberId: 'a-1',
          groupInstanceId: null,
          clientId: 'a',
          clientHost: '/127.0.0.1',
          memberMetadata: Buffer.from('meta:RoundRobinAssigner'),
          memberAssignment: Buffer.from('all'),
        },
      ],
    });
    expect(t.coord.listGroups()).toEqual({ errorCode: 0, groups: [{ groupId: 'g', protocolType: 'consumer', groupState: 'Stable' }] });
  });

  it('three members join in one generation: only the leader gets the member list; the leader sync releases held follower syncs', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const meta = (c: string) => [{ name: 'RoundRobinAssigner', metadata: Buffer.from(`sub:${c}`) }];
    const [a, b, c] = ['a', 'b', 'c'].map((clientId) => track(t.coord.joinGroup(joinReq({ clientId, protocols: meta(clientId) }))));
    await flush();
    expect([a.settled, b.settled, c.settled]).toEqual([false, false, false]);
    expect(t.coord.groupState('g')).toBe(GroupState.PreparingRebalance);

    // b and c joined during the first delay, which buys one more delay period.
    t.scheduler.advance(DELAY);
    await flush();
    expect(a.settled).toBe(false);
    t.scheduler.advance(DELAY);
    await flush();

    for (const r of [a, b, c]) expect(r.value).toMatchObject({ errorCode: 0, generationId: 1, leader: 'a-1', protocolName: 'RoundRobinAssigner' });
    expect(a.value.members).toEqual([
      { memberId: 'a-1', groupInstanceId: null, metadata: Buffer.from('sub:a') },
      { memberId: 'b-2', groupInstanceId: null, metadata: Buffer.from('sub:b') },
      { memberId: 'c-3', groupInstanceId: null, metadata: Buffer.from('sub:c') },
    ]);
    expect(b.value.members).toEqual([]);
    expect(c.value.members).toEqual([]);
    expect(b.value.memberId).toBe('b-2');

    // A follower syncing first is held until the leader's assignment arrives.
    const bSync = track(t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: 'b-2', groupInstanceId: null, assignments: [] }));
    await flush();
    expect(bSync.settled).toBe(false);
    expect(hb(t, 'c-3', 1)).toBe(ErrorCode.NONE); // heartbeats are fine while completing
    const aSync = await t.coord.syncGroup({
      groupId: 'g',
      generationId: 1,
      memberId: 'a-1',
      groupInstanceId: null,
      assignments: [
        { memberId: 'a-1', assignment: Buffer.from('A') },
        { memberId: 'b-2', assignment: Buffer.from('B') },
        { memberId: 'nobody', assignment: Buffer.from('ignored') },
      ],
    });
    await flush();
    expect(aSync.assignment).toEqual(Buffer.from('A'));
    expect(bSync.value).toMatchObject({ errorCode: 0, assignment: Buffer.from('B') });
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);
    // c was missing from the leader's assignments: it gets empty bytes, at once, now that the group is Stable.
    const cSync = await t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: 'c-3', groupInstanceId: null, assignments: [] });
    expect(cSync).toMatchObject({ errorCode: 0, assignment: Buffer.alloc(0) });
  });

  it('keeps its own copies of metadata and assignments (request buffers may be reused socket chunks)', async () => {
    const t = setup();
    const frame = Buffer.from('metadata|assignment');
    await t.coord.joinGroup(joinReq({ clientId: 'a', protocols: [{ name: 'p', metadata: frame.subarray(0, 8) }] }));
    await t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: 'a-1', groupInstanceId: null, assignments: [{ memberId: 'a-1', assignment: frame.subarray(9) }] });
    frame.fill(0);
    const [m] = t.coord.describeGroups(['g'])[0].members;
    expect(m.memberMetadata.toString()).toBe('metadata');
    expect(m.memberAssignment.toString()).toBe('assignment');
  });

  it('with no initial delay every join completes at once, and a later joiner makes the others rejoin', async () => {
    const t = setup();
    const a = await t.coord.joinGroup(joinReq({ clientId: 'a' }));
    await t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: a.memberId, groupInstanceId: null, assignments: [] });
    const b = track(t.coord.joinGroup(joinReq({ clientId: 'b' })));
    await flush();
    expect(b.settled).toBe(false);
    expect(hb(t, a.memberId, 1)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    // kafkajs commits before rejoining: allowed in PreparingRebalance.
    expect(await commitError(t, a.memberId, 1, 42)).toBe(ErrorCode.NONE);
    const a2 = await t.coord.joinGroup(joinReq({ clientId: 'a', memberId: a.memberId }));
    await flush();
    expect(a2).toMatchObject({ errorCode: 0, generationId: 2, leader: a.memberId });
    expect(a2.members.map((m) => m.memberId)).toEqual([a.memberId, 'b-2']);
    expect(b.value).toMatchObject({ errorCode: 0, generationId: 2, leader: a.memberId, members: [] });
  });

  it('a leader rejoining a Stable group forces a rebalance; a follower with unchanged metadata just gets the current generation', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    const follower = await t.coord.joinGroup(joinReq({ clientId: 'b', memberId: g.ids.b }));
    expect(follower).toMatchObject({ errorCode: 0, generationId: 1, leader: g.ids.a, members: [] });
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);

    const leader = track(t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a })));
    await flush();
    expect(leader.settled).toBe(false);
    expect(t.coord.groupState('g')).toBe(GroupState.PreparingRebalance);
  });

  it('a member repeating its JoinGroup during CompletingRebalance gets the same answer again', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const [a, b] = ['a', 'b'].map((clientId) => track(t.coord.joinGroup(joinReq({ clientId }))));
    t.scheduler.advance(2 * DELAY);
    await flush();
    const again = await t.coord.joinGroup(joinReq({ clientId: 'a', memberId: a.value.memberId }));
    expect(again).toEqual(a.value);
    const againB = await t.coord.joinGroup(joinReq({ clientId: 'b', memberId: b.value.memberId }));
    expect(againB).toEqual(b.value);
    expect(t.coord.groupState('g')).toBe(GroupState.CompletingRebalance);
  });

  it('a second JoinGroup from the same member supersedes the held one', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    const first = track(t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a })));
    const second = track(t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a })));
    await flush();
    expect(first.value).toMatchObject({ errorCode: ErrorCode.REBALANCE_IN_PROGRESS, memberId: g.ids.a });
    expect(second.settled).toBe(false);
    await t.coord.joinGroup(joinReq({ clientId: 'b', memberId: g.ids.b }));
    await flush();
    expect(second.value).toMatchObject({ errorCode: 0, generationId: 2 });
  });
});

describe('membership changes', () => {
  it('a member leaving triggers a rebalance: the others get REBALANCE_IN_PROGRESS on heartbeat, then rejoin', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b', 'c']);
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);

    const left = t.coord.leaveGroup({ groupId: 'g', members: [{ memberId: g.ids.c, groupInstanceId: null }] });
    expect(left).toEqual({ errorCode: 0, members: [{ memberId: g.ids.c, groupInstanceId: null, errorCode: 0 }] });
    expect(t.coord.groupState('g')).toBe(GroupState.PreparingRebalance);
    expect(hb(t, g.ids.a, 1)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(hb(t, g.ids.b, 1)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(hb(t, g.ids.c, 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);

    const b = track(t.coord.joinGroup(joinReq({ clientId: 'b', memberId: g.ids.b })));
    await flush();
    expect(b.settled).toBe(false);
    const a = await t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a }));
    await flush();
    expect(a).toMatchObject({ errorCode: 0, generationId: 2, leader: g.ids.a });
    expect(a.members.map((m) => m.memberId)).toEqual([g.ids.a, g.ids.b]);
    expect(b.value).toMatchObject({ errorCode: 0, generationId: 2, leader: g.ids.a, members: [] });
  });

  it('LeaveGroup v3 batches: per-member errors, pending ids accepted, unknown ids refused; unknown group ⇒ all unknown', async () => {
    const t = setup();
    const pending = await t.coord.joinGroup(joinReq({ clientId: 'p', requireKnownMemberId: true }));
    expect(pending).toMatchObject({ errorCode: ErrorCode.MEMBER_ID_REQUIRED, memberId: 'p-1' });
    const res = t.coord.leaveGroup({
      groupId: 'g',
      members: [
        { memberId: 'p-1', groupInstanceId: null },
        { memberId: 'ghost', groupInstanceId: null },
      ],
    });
    expect(res.members.map((m) => m.errorCode)).toEqual([ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID]);
    expect(t.coord.leaveGroup({ groupId: 'nope', members: [{ memberId: 'x', groupInstanceId: null }] })).toEqual({
      errorCode: 0,
      members: [{ memberId: 'x', groupInstanceId: null, errorCode: ErrorCode.UNKNOWN_MEMBER_ID }],
    });
    expect(t.coord.leaveGroup({ groupId: '', members: [] }).errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
  });

  it('LeaveGroup by group instance id (member id "") removes that member', async () => {
    const t = setup();
    const a = await t.coord.joinGroup(joinReq({ clientId: 'a', groupInstanceId: 'inst-a' }));
    expect(a.members[0].groupInstanceId).toBe('inst-a');
    const res = t.coord.leaveGroup({ groupId: 'g', members: [{ memberId: '', groupInstanceId: 'inst-a' }] });
    expect(res.members[0].errorCode).toBe(ErrorCode.NONE);
    expect(t.coord.groupState('g')).toBe(GroupState.Empty);
  });

  it('the last member leaving a Stable group leaves it Empty with the next generation', async () => {
    const t = setup();
    const g = await formGroup(t, ['a']);
    t.coord.leaveGroup({ groupId: 'g', members: [{ memberId: g.ids.a, groupInstanceId: null }] });
    expect(t.coord.groupState('g')).toBe(GroupState.Empty);
    expect(t.coord.describeGroups(['g'])[0]).toMatchObject({ groupState: 'Empty', protocolType: 'consumer', members: [] });
    // Going Empty took a generation too: the next join forms generation 3.
    const a = await t.coord.joinGroup(joinReq({ clientId: 'a' }));
    expect(a.generationId).toBe(3);
  });

  it('session timeout expiry removes a silent member and rebalances the rest', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    // b heartbeats every 5 s; a (the leader) goes silent after its SyncGroup.
    for (let elapsed = 5_000; elapsed < SESSION_MS; elapsed += 5_000) {
      t.scheduler.advance(5_000);
      expect(hb(t, g.ids.b, 1)).toBe(ErrorCode.NONE);
    }
    t.scheduler.advance(SESSION_MS - 25_000 - 1);
    expect(t.coord.describeGroups(['g'])[0].members).toHaveLength(2);
    t.scheduler.advance(1);
    expect(t.coord.describeGroups(['g'])[0].members.map((m) => m.memberId)).toEqual([g.ids.b]);
    expect(t.coord.groupState('g')).toBe(GroupState.PreparingRebalance);
    expect(hb(t, g.ids.a, 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(hb(t, g.ids.b, 1)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const b = await t.coord.joinGroup(joinReq({ clientId: 'b', memberId: g.ids.b }));
    expect(b).toMatchObject({ errorCode: 0, generationId: 2, leader: g.ids.b });
    expect(b.members.map((m) => m.memberId)).toEqual([g.ids.b]);
  });

  it('the session deadline counts from the last heartbeat to the millisecond', async () => {
    const t = setup();
    const g = await formGroup(t, ['a']);
    t.scheduler.advance(1_000);
    expect(hb(t, g.ids.a, 1)).toBe(ErrorCode.NONE);
    t.scheduler.advance(SESSION_MS - 1); // the join-time timer fired meanwhile and was re-armed
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);
    t.scheduler.advance(1);
    expect(t.coord.groupState('g')).toBe(GroupState.Empty);
  });

  it('rebalance timeout drops members that did not rejoin; a held join outlives the session timeout', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    const a = track(t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a })));
    // b keeps heartbeating (and is told to rejoin) but never does.
    for (let elapsed = 5_000; elapsed < REBALANCE_MS; elapsed += 5_000) {
      t.scheduler.advance(5_000);
      expect(hb(t, g.ids.b, 1)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    }
    t.scheduler.advance(4_999);
    await flush();
    expect(a.settled).toBe(false); // well past a's 30 s session: waiting on us is not silence
    t.scheduler.advance(1);
    await flush();
    expect(a.value).toMatchObject({ errorCode: 0, generationId: 2, leader: g.ids.a });
    expect(a.value.members.map((m) => m.memberId)).toEqual([g.ids.a]);
    expect(hb(t, g.ids.b, 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(hb(t, g.ids.b, 2)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    // Kept alive while waiting, a is still subject to its session timeout once answered.
    t.scheduler.advance(SESSION_MS - 1);
    expect(t.coord.groupState('g')).toBe(GroupState.CompletingRebalance);
    t.scheduler.advance(1);
    expect(t.coord.groupState('g')).toBe(GroupState.Empty);
  });

  it('JoinGroup v0 (no rebalance timeout) uses the session timeout as the rebalance timeout', async () => {
    const t = setup();
    const x = await t.coord.joinGroup(joinReq({ clientId: 'x', rebalanceTimeoutMs: -1, sessionTimeoutMs: 10_000 }));
    expect(x.generationId).toBe(1);
    t.scheduler.advance(5_000);
    expect(hb(t, x.memberId, 1)).toBe(ErrorCode.NONE); // alive until 15 s
    t.scheduler.advance(4_999);
    expect(t.coord.groupState('g')).toBe(GroupState.CompletingRebalance);
    t.scheduler.advance(1); // 10 s after the join, x still has not synced
    expect(t.coord.groupState('g')).toBe(GroupState.Empty);
  });

  it('a follower that never sends SyncGroup is removed when the pending-sync timer fires', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const [a, b] = ['a', 'b'].map((clientId) => track(t.coord.joinGroup(joinReq({ clientId }))));
    t.scheduler.advance(2 * DELAY);
    await flush();
    const aId = a.value.memberId;
    const bId = b.value.memberId;
    await t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: aId, groupInstanceId: null, assignments: [] });
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);
    for (let elapsed = 0; elapsed < REBALANCE_MS; elapsed += 10_000) {
      expect(hb(t, aId, 1)).toBe(ErrorCode.NONE);
      expect(hb(t, bId, 1)).toBe(ErrorCode.NONE);
      t.scheduler.advance(10_000);
    }
    expect(t.coord.describeGroups(['g'])[0].members.map((m) => m.memberId)).toEqual([aId]);
    expect(hb(t, aId, 1)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(hb(t, bId, 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('a rebalance during CompletingRebalance answers held SyncGroups with REBALANCE_IN_PROGRESS', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const [a, b] = ['a', 'b'].map((clientId) => track(t.coord.joinGroup(joinReq({ clientId }))));
    t.scheduler.advance(2 * DELAY);
    await flush();
    const bSync = track(t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: b.value.memberId, groupInstanceId: null, assignments: [] }));
    const c = track(t.coord.joinGroup(joinReq({ clientId: 'c' })));
    await flush();
    expect(bSync.value).toMatchObject({ errorCode: ErrorCode.REBALANCE_IN_PROGRESS, assignment: Buffer.alloc(0) });
    expect(c.settled).toBe(false);
    expect(t.coord.groupState('g')).toBe(GroupState.PreparingRebalance);
    // The leader's late SyncGroup for the old generation is refused.
    const late = await t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: a.value.memberId, groupInstanceId: null, assignments: [] });
    expect(late.errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
  });
});

describe('MEMBER_ID_REQUIRED (JoinGroup v4+)', () => {
  it('an empty member id gets a fresh id and MEMBER_ID_REQUIRED; rejoining with it joins', async () => {
    const t = setup();
    const first = await t.coord.joinGroup(joinReq({ clientId: 'a', requireKnownMemberId: true }));
    expect(first).toEqual({ errorCode: ErrorCode.MEMBER_ID_REQUIRED, generationId: -1, protocolType: null, protocolName: '', leader: '', memberId: 'a-1', members: [] });
    expect(t.coord.groupState('g')).toBe(GroupState.Empty);
    const second = await t.coord.joinGroup(joinReq({ clientId: 'a', memberId: first.memberId, requireKnownMemberId: true }));
    expect(second).toMatchObject({ errorCode: 0, generationId: 1, memberId: 'a-1', leader: 'a-1' });
  });

  it('a group instance id skips MEMBER_ID_REQUIRED', async () => {
    const t = setup();
    const res = await t.coord.joinGroup(joinReq({ clientId: 'a', requireKnownMemberId: true, groupInstanceId: 'i' }));
    expect(res).toMatchObject({ errorCode: 0, generationId: 1 });
  });

  it('an outstanding id holds up the rebalance until it joins or expires after the session timeout', async () => {
    const t = setup();
    const g = await formGroup(t, ['a']);
    const b = await t.coord.joinGroup(joinReq({ clientId: 'b', requireKnownMemberId: true }));
    expect(b.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    expect(t.coord.groupState('g')).toBe(GroupState.Stable); // a pending id alone starts nothing

    const a = track(t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a })));
    await flush();
    expect(a.settled).toBe(false);
    t.scheduler.advance(SESSION_MS - 1);
    await flush();
    expect(a.settled).toBe(false);
    t.scheduler.advance(1);
    await flush();
    expect(a.value).toMatchObject({ errorCode: 0, generationId: 2 });
    expect(a.value.members.map((m) => m.memberId)).toEqual([g.ids.a]);
    const late = await t.coord.joinGroup(joinReq({ clientId: 'b', memberId: b.memberId, requireKnownMemberId: true }));
    expect(late.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('an outstanding id that joins completes the held rebalance with it', async () => {
    const t = setup();
    const g = await formGroup(t, ['a']);
    const b = await t.coord.joinGroup(joinReq({ clientId: 'b', requireKnownMemberId: true }));
    const a = track(t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a })));
    const b2 = track(t.coord.joinGroup(joinReq({ clientId: 'b', memberId: b.memberId, requireKnownMemberId: true })));
    await flush();
    expect(a.value).toMatchObject({ errorCode: 0, generationId: 2, leader: g.ids.a });
    expect(a.value.members.map((m) => m.memberId)).toEqual([g.ids.a, b.memberId]);
    expect(b2.value).toMatchObject({ errorCode: 0, generationId: 2, memberId: b.memberId, members: [] });
  });
});

describe('error codes', () => {
  it('ILLEGAL_GENERATION for a stale generation on heartbeat, sync and commit', async () => {
    const t = setup();
    const g = await formGroup(t, ['a']);
    expect(hb(t, g.ids.a, 0)).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect(hb(t, g.ids.a, 2)).toBe(ErrorCode.ILLEGAL_GENERATION);
    const sync = await t.coord.syncGroup({ groupId: 'g', generationId: 7, memberId: g.ids.a, groupInstanceId: null, assignments: [] });
    expect(sync.errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect(await commitError(t, g.ids.a, 0, 1)).toBe(ErrorCode.ILLEGAL_GENERATION);
    // A group this coordinator does not know refuses commits that claim a generation.
    expect(await commitError(t, 'x', 3, 1, 'unknown-group')).toBe(ErrorCode.ILLEGAL_GENERATION);
  });

  it('UNKNOWN_MEMBER_ID for unknown members and groups', async () => {
    const t = setup();
    const g = await formGroup(t, ['a']);
    expect(hb(t, 'ghost', 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(hb(t, g.ids.a, 1, 'other')).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    const sync = await t.coord.syncGroup({ groupId: 'g', generationId: 1, memberId: 'ghost', groupInstanceId: null, assignments: [] });
    expect(sync.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    const syncNoGroup = await t.coord.syncGroup({ groupId: 'other', generationId: 1, memberId: 'ghost', groupInstanceId: null, assignments: [] });
    expect(syncNoGroup.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    const join = await t.coord.joinGroup(joinReq({ memberId: 'ghost' }));
    expect(join).toMatchObject({ errorCode: ErrorCode.UNKNOWN_MEMBER_ID, memberId: 'ghost', generationId: -1 });
    const joinNoGroup = await t.coord.joinGroup(joinReq({ groupId: 'other', memberId: 'ghost' }));
    expect(joinNoGroup.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(t.coord.groupState('other')).toBe(GroupState.Dead); // nothing was created
    expect(await commitError(t, 'ghost', 1, 1)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('INVALID_SESSION_TIMEOUT outside [min, max] and INVALID_GROUP_ID for an empty group id', async () => {
    const t = setup();
    expect((await t.coord.joinGroup(joinReq({ sessionTimeoutMs: 5_999 }))).errorCode).toBe(ErrorCode.INVALID_SESSION_TIMEOUT);
    expect((await t.coord.joinGroup(joinReq({ sessionTimeoutMs: 1_800_001 }))).errorCode).toBe(ErrorCode.INVALID_SESSION_TIMEOUT);
    expect((await t.coord.joinGroup(joinReq({ groupId: '' }))).errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
    expect(hb(t, 'x', 1, '')).toBe(ErrorCode.INVALID_GROUP_ID);
    const sync = await t.coord.syncGroup({ groupId: '', generationId: 1, memberId: 'x', groupInstanceId: null, assignments: [] });
    expect(sync.errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
    // OffsetCommit, OffsetFetch and DescribeGroups accept the empty group id.
    expect(await commitError(t, '', -1, 5, '')).toBe(ErrorCode.NONE);
    expect(committed(t, '')).toBe(5);
    expect(t.coord.describeGroups([''])[0]).toMatchObject({ errorCode: 0, groupState: 'Empty' });
    expect(t.coord.listGroups().groups.map((g) => g.groupId)).toEqual(['']);
  });

  it('INCONSISTENT_GROUP_PROTOCOL for another protocol type or no common protocol', async () => {
    const t = setup();
    await formGroup(t, ['a']);
    const otherType = await t.coord.joinGroup(joinReq({ clientId: 'b', protocolType: 'connect' }));
    expect(otherType.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const noCommon = await t.coord.joinGroup(joinReq({ clientId: 'b', protocols: protocols('range', 'roundrobin') }));
    expect(noCommon.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const none = await t.coord.joinGroup(joinReq({ groupId: 'fresh', protocols: [] }));
    expect(none.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const noType = await t.coord.joinGroup(joinReq({ groupId: 'fresh', protocolType: '' }));
    expect(noType.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    expect(t.coord.groupState('g')).toBe(GroupState.Stable);
  });

  it('selects the protocol by member votes among the protocols every member supports', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const specs: [string, GroupProtocol[]][] = [
      ['a', protocols('range', 'roundrobin', 'sticky')],
      ['b', protocols('roundrobin', 'range')],
      ['c', protocols('sticky', 'roundrobin', 'range')],
    ];
    const [a, b, c] = specs.map(([clientId, p]) => track(t.coord.joinGroup(joinReq({ clientId, protocols: p }))));
    t.scheduler.advance(2 * DELAY);
    await flush();
    // Candidates: range, roundrobin (sticky is not b's). Votes: a→range, b→roundrobin, c→roundrobin.
    for (const r of [a, b, c]) expect(r.value.protocolName).toBe('roundrobin');
    expect(a.value.members.map((m) => m.metadata.toString())).toEqual(['meta:roundrobin', 'meta:roundrobin', 'meta:roundrobin']);
  });
});

describe('offsets', () => {
  it('OffsetCommit is accepted in Stable and PreparingRebalance, refused with REBALANCE_IN_PROGRESS in CompletingRebalance', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    expect(await commitError(t, g.ids.a, 1, 10)).toBe(ErrorCode.NONE);
    expect(committed(t)).toBe(10);

    t.coord.leaveGroup({ groupId: 'g', members: [{ memberId: g.ids.b, groupInstanceId: null }] });
    expect(t.coord.groupState('g')).toBe(GroupState.PreparingRebalance);
    expect(await commitError(t, g.ids.a, 1, 11)).toBe(ErrorCode.NONE);
    expect(committed(t)).toBe(11);

    const a = await t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a }));
    expect(t.coord.groupState('g')).toBe(GroupState.CompletingRebalance);
    expect(await commitError(t, g.ids.a, a.generationId, 12)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(committed(t)).toBe(11);
  });

  it('a commit in PreparingRebalance counts as a heartbeat', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    t.coord.leaveGroup({ groupId: 'g', members: [{ memberId: g.ids.b, groupInstanceId: null }] });
    t.scheduler.advance(SESSION_MS - 1);
    expect(await commitError(t, g.ids.a, 1, 1)).toBe(ErrorCode.NONE);
    t.scheduler.advance(SESSION_MS / 2); // past a's original session deadline, before the rebalance timeout
    expect(hb(t, g.ids.a, 1)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
  });

  it('generation -1 commits to an absent or Empty group (admin/manual assignment) and creates an Empty group', async () => {
    const t = setup();
    const res = await t.coord.commitOffsets({
      groupId: 'admin',
      generationId: -1,
      memberId: '',
      groupInstanceId: null,
      topics: [
        {
          name: 't',
          partitions: [
            { partitionIndex: 0, committedOffset: 100, committedLeaderEpoch: 3, committedMetadata: 'hello' },
            { partitionIndex: 1, committedOffset: 200, committedLeaderEpoch: -1, committedMetadata: 'x'.repeat(4097) },
          ],
        },
      ],
    });
    expect(res.topics[0].partitions).toEqual([
      { partitionIndex: 0, errorCode: ErrorCode.NONE },
      { partitionIndex: 1, errorCode: ErrorCode.OFFSET_METADATA_TOO_LARGE },
    ]);
    expect(t.coord.groupState('admin')).toBe(GroupState.Empty);
    expect(t.coord.listGroups().groups).toEqual([{ groupId: 'admin', protocolType: '', groupState: 'Empty' }]);
    expect(t.offsets.get('admin', 't', 0)).toEqual({ topic: 't', partition: 0, offset: 100, leaderEpoch: 3, metadata: 'hello', commitTimestampMs: 1_000_000 });
    // Once the group has members, generation -1 is no longer enough.
    await t.coord.joinGroup(joinReq({ groupId: 'admin', clientId: 'a' }));
    expect(await commitError(t, '', -1, 1, 'admin')).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('OffsetFetch: unknown partitions answer -1/""; topics null answers every committed partition', async () => {
    const t = setup();
    await t.coord.commitOffsets({
      groupId: 'g',
      generationId: -1,
      memberId: '',
      groupInstanceId: null,
      topics: [
        { name: 'b', partitions: [{ partitionIndex: 1, committedOffset: 5, committedLeaderEpoch: 2, committedMetadata: 'm' }] },
        { name: 'a', partitions: [{ partitionIndex: 3, committedOffset: 7, committedLeaderEpoch: -1, committedMetadata: null }] },
        { name: 'b', partitions: [{ partitionIndex: 0, committedOffset: 4, committedLeaderEpoch: -1, committedMetadata: null }] },
      ],
    });
    expect(t.coord.fetchOffsets({ groupId: 'g', topics: [{ name: 'b', partitionIndexes: [1, 9] }, { name: 'zz', partitionIndexes: [0] }] })).toEqual({
      errorCode: 0,
      topics: [
        {
          name: 'b',
          partitions: [
            { partitionIndex: 1, committedOffset: 5, committedLeaderEpoch: 2, metadata: 'm', errorCode: 0 },
            { partitionIndex: 9, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode: 0 },
          ],
        },
        { name: 'zz', partitions: [{ partitionIndex: 0, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode: 0 }] },
      ],
    });
    const all = t.coord.fetchOffsets({ groupId: 'g', topics: null });
    expect(all.topics.map((x) => [x.name, x.partitions.map((p) => [p.partitionIndex, p.committedOffset])])).toEqual([
      ['a', [[3, 7]]],
      [
        'b',
        [
          [0, 4],
          [1, 5],
        ],
      ],
    ]);
    expect(t.coord.fetchOffsets({ groupId: 'nobody', topics: null })).toEqual({ errorCode: 0, topics: [] });
  });

  it('a failing OffsetStore.put rejects the commit instead of answering success', async () => {
    const t = setup();
    t.offsets.put = () => Promise.reject(new Error('disk full'));
    await expect(commit(t, '', -1, 1)).rejects.toThrow('disk full');
  });
});

describe('describe, list, delete, restart, close', () => {
  it('DescribeGroups of an unknown group answers error 0 and state Dead', () => {
    const t = setup();
    expect(t.coord.describeGroups(['missing'])).toEqual([
      { errorCode: 0, groupId: 'missing', groupState: 'Dead', protocolType: '', protocolData: '', members: [] },
    ]);
  });

  it('DescribeGroups outside Stable lists members without metadata or assignment', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    t.coord.leaveGroup({ groupId: 'g', members: [{ memberId: g.ids.b, groupInstanceId: null }] });
    const [d] = t.coord.describeGroups(['g']);
    expect(d).toMatchObject({ groupState: 'PreparingRebalance', protocolType: 'consumer', protocolData: '' });
    expect(d.members).toEqual([
      { memberId: g.ids.a, groupInstanceId: null, clientId: 'a', clientHost: '/127.0.0.1', memberMetadata: Buffer.alloc(0), memberAssignment: Buffer.alloc(0) },
    ]);
  });

  it('DeleteGroups: Empty groups go (with their offsets), active ones are NON_EMPTY_GROUP, unknown ones GROUP_ID_NOT_FOUND', async () => {
    const t = setup();
    await formGroup(t, ['a'], 'busy');
    await commit(t, '', -1, 9, 'idle');
    const res = await t.coord.deleteGroups(['busy', 'idle', 'never']);
    expect(res).toEqual([
      { groupId: 'busy', errorCode: ErrorCode.NON_EMPTY_GROUP },
      { groupId: 'idle', errorCode: ErrorCode.NONE },
      { groupId: 'never', errorCode: ErrorCode.GROUP_ID_NOT_FOUND },
    ]);
    expect(t.offsets.list('idle')).toEqual([]);
    expect(t.coord.groupState('idle')).toBe(GroupState.Dead);
    expect(t.coord.listGroups().groups.map((g) => g.groupId)).toEqual(['busy']);
  });

  it('after a restart, groups with committed offsets exist as Empty groups and old members must rejoin', async () => {
    const t = setup();
    const g = await formGroup(t, ['a']);
    await commit(t, g.ids.a, 1, 33);
    const restarted = new GroupCoordinator({ scheduler: t.scheduler, offsets: t.offsets });
    expect(restarted.describeGroups(['g'])[0]).toMatchObject({ errorCode: 0, groupState: 'Empty', members: [] });
    expect(restarted.heartbeat({ groupId: 'g', generationId: 1, memberId: g.ids.a, groupInstanceId: null }).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(restarted.fetchOffsets({ groupId: 'g', topics: [{ name: 't', partitionIndexes: [0] }] }).topics[0].partitions[0].committedOffset).toBe(33);
    const join = await restarted.joinGroup(joinReq({ clientId: 'a' }));
    expect(join).toMatchObject({ errorCode: 0, generationId: 1 });
  });

  it('close() answers held requests with NOT_COORDINATOR, cancels every timer and refuses later calls', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b']);
    const a = track(t.coord.joinGroup(joinReq({ clientId: 'a', memberId: g.ids.a })));
    const pending = await t.coord.joinGroup(joinReq({ groupId: 'other', clientId: 'p', requireKnownMemberId: true }));
    expect(pending.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    t.coord.close();
    await flush();
    expect(a.value.errorCode).toBe(ErrorCode.NOT_COORDINATOR);
    expect(t.scheduler.pendingTimers).toBe(0);
    expect(hb(t, g.ids.b, 1)).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    expect(t.coord.listGroups().errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    expect((await t.coord.joinGroup(joinReq())).errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
  });

  it('leaves no timers behind once every group is Empty', async () => {
    const t = setup({ initialRebalanceDelayMs: DELAY });
    const g = await formGroup(t, ['a', 'b', 'c']);
    t.coord.leaveGroup({ groupId: 'g', members: Object.values(g.ids).map((memberId) => ({ memberId, groupInstanceId: null })) });
    expect(t.coord.groupState('g')).toBe(GroupState.Empty);
    expect(t.scheduler.pendingTimers).toBe(0);
  });
});
