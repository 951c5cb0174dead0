/**
 * Committed consumer-group offsets, behind an interface so the coordinator stays pure and the
 * durable implementation (a compacted log or a checkpoint file) can come later.
 *
 * Contract every implementation keeps:
 *  - reads (get/list/groupIds) are synchronous: committed offsets are loaded into memory before the
 *    broker listens, as Kafka loads __consumer_offsets before serving a group;
 *  - put() is all-or-nothing per call and resolves only once the offsets are durable; its offsets
 *    are visible to reads no later than when it resolves; it rejects (never swallows) on failure;
 *  - metadata is stored as given ("" for a commit without metadata).
 * InMemoryOffsetStore is the test double (and the reference semantics): nothing survives a restart.
 */

export interface CommittedOffset {
  topic: string;
  partition: number;
  offset: number;
  /** -1 when the client sent none (OffsetCommit before v6). */
  leaderEpoch: number;
  metadata: string;
  /** Coordinator clock at commit time; for a future offsets.retention.minutes. */
  commitTimestampMs: number;
}

export interface OffsetStore {
  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined;
  /** Every committed offset of the group, in no particular order. */
  list(groupId: string): CommittedOffset[];
  /** Groups holding at least one committed offset. */
  groupIds(): string[];
  put(groupId: string, offsets: readonly CommittedOffset[]): Promise<void>;
  /** Drops every offset of the group (DeleteGroups). */
  deleteGroup(groupId: string): Promise<void>;
}

export class InMemoryOffsetStore implements OffsetStore {
  private readonly groups = new Map<string, Map<string, CommittedOffset>>();

  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.groups.get(groupId)?.get(key(topic, partition));
  }

  list(groupId: string): CommittedOffset[] {
    return [...(this.groups.get(groupId)?.values() ?? [])];
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  put(groupId: string, offsets: readonly CommittedOffset[]): Promise<void> {
    if (offsets.length === 0) return Promise.resolve();
    let g = this.groups.get(groupId);
    if (!g) {
      g = new Map();
      this.groups.set(groupId, g);
    }
    for (const o of offsets) g.set(key(o.topic, o.partition), { ...o });
    return Promise.resolve();
  }

  deleteGroup(groupId: string): Promise<void> {
    this.groups.delete(groupId);
    return Promise.resolve();
  }
}

function key(topic: string, partition: number): string {
  return `${partition}:${topic}`;
}
