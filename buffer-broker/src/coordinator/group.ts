/**
 * One consumer group's in-memory metadata and the pure rules over it (protocol support, protocol
 * selection by votes, "everyone has rejoined"). It owns no timers' behaviour and answers no
 * requests: GroupCoordinator drives every transition.
 *
 * Invariants (kept by GroupCoordinator):
 *  - leaderId is null iff members is empty; otherwise it names a member;
 *  - protocolName is non-null in CompletingRebalance and Stable, null in Empty and Dead (during
 *    PreparingRebalance it still names the previous generation's protocol, if any);
 *  - pendingSync ⊆ members, and is empty outside CompletingRebalance/Stable;
 *  - a member has a held JoinGroup only in PreparingRebalance, a held SyncGroup only in
 *    CompletingRebalance.
 */
import type { CancelTimer } from './scheduler.ts';
import { GroupState, type GroupProtocol, type GroupStateName, type JoinGroupResult, type SyncGroupResult } from './types.ts';

export interface Member {
  readonly memberId: string;
  groupInstanceId: string | null;
  readonly clientId: string;
  readonly clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: readonly GroupProtocol[];
  assignment: Buffer;
  /** Resolver of a held JoinGroup. */
  awaitingJoin: ((res: JoinGroupResult) => void) | null;
  /** Resolver of a held SyncGroup. */
  awaitingSync: ((res: SyncGroupResult) => void) | null;
  /** Expires when the scheduler clock passes this without a heartbeat/join/sync/commit. */
  sessionDeadline: number;
  /** The one armed session timer (re-armed lazily when it fires early). */
  sessionTimer: CancelTimer | null;
}

/** State of Kafka's InitialDelayedJoin while a rebalance of a formerly Empty group is being delayed. */
export interface InitialDelay {
  remainingMs: number;
  newMemberAdded: boolean;
}

export const EMPTY = Buffer.alloc(0);

export class Group {
  state: GroupStateName = GroupState.Empty;
  generationId = 0;
  protocolType: string | null = null;
  protocolName: string | null = null;
  leaderId: string | null = null;
  /** Insertion order = join order; the first is the fallback leader. */
  readonly members = new Map<string, Member>();
  /** Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with their expiry timers. */
  readonly pendingMembers = new Map<string, CancelTimer>();
  /** Members of the current generation that have not sent SyncGroup yet. */
  readonly pendingSync = new Set<string>();
  joinTimer: CancelTimer | null = null;
  syncTimer: CancelTimer | null = null;
  initialDelay: InitialDelay | null = null;

  constructor(readonly groupId: string) {}

  is(state: GroupStateName): boolean {
    return this.state === state;
  }

  isLeader(memberId: string): boolean {
    return this.leaderId === memberId;
  }

  /** Kafka GroupMetadata.supportsProtocols, judged against every member except `self`. */
  supportsProtocols(self: string | null, protocolType: string, protocols: readonly GroupProtocol[]): boolean {
    if (protocolType === '' || protocols.length === 0) return false;
    const others = [...this.members.values()].filter((m) => m.memberId !== self);
    if (others.length === 0) return true;
    if (this.protocolType !== protocolType) return false;
    return protocols.some((p) => others.every((m) => m.protocols.some((q) => q.name === p.name)));
  }

  /** Protocol names every member supports, in the first member's order of preference. */
  candidateProtocols(): string[] {
    const all = [...this.members.values()];
    if (all.length === 0) return [];
    return all[0].protocols.map((p) => p.name).filter((name) => all.every((m) => m.protocols.some((q) => q.name === name)));
  }

  /**
   * Kafka GroupMetadata.selectProtocol: each member votes for its most preferred candidate; the
   * most votes wins. Ties go to the candidate that got its first vote earliest (join order).
   */
  selectProtocol(): string {
    const candidates = new Set(this.candidateProtocols());
    const votes = new Map<string, number>();
    for (const m of this.members.values()) {
      const vote = m.protocols.find((p) => candidates.has(p.name));
      if (vote) votes.set(vote.name, (votes.get(vote.name) ?? 0) + 1);
    }
    let best: string | null = null;
    let bestVotes = 0;
    for (const [name, n] of votes) {
      if (n > bestVotes) {
        best = name;
        bestVotes = n;
      }
    }
    // Unreachable while joins are checked with supportsProtocols; kept total for safety.
    if (best === null) throw new Error(`group ${this.groupId}: no protocol common to all members`);
    return best;
  }

  /** Kafka's DelayedJoin condition: every member has a held JoinGroup and no MEMBER_ID_REQUIRED id is outstanding. */
  allMembersJoined(): boolean {
    if (this.pendingMembers.size > 0) return false;
    for (const m of this.members.values()) if (m.awaitingJoin === null) return false;
    return true;
  }

  /** The rebalance timeout of the group: the largest of its members'. */
  rebalanceTimeoutMs(): number {
    let t = 0;
    for (const m of this.members.values()) t = Math.max(t, m.rebalanceTimeoutMs);
    return t;
  }

  /** Adds a member; the first member of a memberless group fixes the protocol type and leads. */
  add(member: Member): void {
    if (this.members.size === 0) this.protocolType = member.protocolType;
    this.members.set(member.memberId, member);
    if (this.leaderId === null) this.leaderId = member.memberId;
  }

  /** Removes a member and moves leadership to the first remaining member if it led. */
  remove(memberId: string): void {
    this.members.delete(memberId);
    this.pendingSync.delete(memberId);
    if (this.leaderId === memberId) {
      const next = this.members.keys().next();
      this.leaderId = next.done ? null : next.value;
    }
  }

  findByInstanceId(groupInstanceId: string): Member | undefined {
    for (const m of this.members.values()) if (m.groupInstanceId === groupInstanceId) return m;
    return undefined;
  }
}

export function metadataFor(member: Member, protocolName: string): Buffer {
  return member.protocols.find((p) => p.name === protocolName)?.metadata ?? EMPTY;
}

/** Same protocols, same order, same metadata bytes (Kafka MemberMetadata.matches). */
export function sameProtocols(a: readonly GroupProtocol[], b: readonly GroupProtocol[]): boolean {
  return a.length === b.length && a.every((p, i) => p.name === b[i].name && p.metadata.equals(b[i].metadata));
}
