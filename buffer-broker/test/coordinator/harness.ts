/**
 * Test harness for the group coordinator: a ManualScheduler clock, an in-memory offset store,
 * deterministic member ids, request builders with kafkajs-like defaults, and a way to observe held
 * promises without sleeping (flush() only drains already-queued callbacks).
 */
import { GroupCoordinator, type GroupCoordinatorConfig } from '../../src/coordinator/group-coordinator.ts';
import { InMemoryOffsetStore } from '../../src/coordinator/offset-store.ts';
import { ManualScheduler } from '../../src/coordinator/scheduler.ts';
import type { GroupProtocol, JoinGroupInput, JoinGroupResult, SyncGroupResult } from '../../src/coordinator/types.ts';

export const SESSION_MS = 30_000;
export const REBALANCE_MS = 60_000;

export function setup(config: Partial<GroupCoordinatorConfig> = {}) {
  const scheduler = new ManualScheduler(1_000_000);
  const offsets = new InMemoryOffsetStore();
  let n = 0;
  const coord = new GroupCoordinator({ scheduler, offsets, config, newMemberId: (clientId) => `${clientId}-${++n}` });
  return { scheduler, offsets, coord };
}

export function protocols(...names: string[]): GroupProtocol[] {
  return names.map((name) => ({ name, metadata: Buffer.from(`meta:${name}`) }));
}

export function joinReq(over: Partial<JoinGroupInput> = {}): JoinGroupInput {
  return {
    groupId: 'g',
    memberId: '',
    groupInstanceId: null,
    clientId: 'c',
    clientHost: '/127.0.0.1',
    sessionTimeoutMs: SESSION_MS,
    rebalanceTimeoutMs: REBALANCE_MS,
    protocolType: 'consumer',
    protocols: protocols('RoundRobinAssigner'),
    requireKnownMemberId: false,
    ...over,
  };
}

export interface Tracked<T> {
  readonly settled: boolean;
  /** The resolved value; throws if not settled yet. */
  readonly value: T;
}

/** Observes a promise; its state is visible after `await flush()`. */
export function track<T>(p: Promise<T>): Tracked<T> {
  let settled = false;
  let value: T | undefined;
  p.then(
    (v) => {
      settled = true;
      value = v;
    },
    (err: unknown) => {
      settled = true;
      throw err;
    },
  );
  return {
    get settled() {
      return settled;
    },
    get value(): T {
      if (!settled) throw new Error('promise not settled');
      return value as T;
    },
  };
}

/** Lets already-resolved promise callbacks run (a macrotask turn; no time passes). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface FormedGroup {
  generationId: number;
  leader: string;
  /** clientId → memberId */
  ids: Record<string, string>;
  joins: Record<string, JoinGroupResult>;
  syncs: Record<string, SyncGroupResult>;
}

/**
 * Joins the given clients together (relying on an initial rebalance delay, or on a single
 * client), then syncs leader first with "assign:<clientId>" assignments: the group ends Stable.
 */
export async function formGroup(t: ReturnType<typeof setup>, clientIds: string[], groupId = 'g'): Promise<FormedGroup> {
  const pending = clientIds.map((clientId) => track(t.coord.joinGroup(joinReq({ groupId, clientId }))));
  await flush();
  // Every joiner during the initial delay extends it by one more delay period.
  for (let i = 0; i < 100 && pending.some((p) => !p.settled); i++) {
    t.scheduler.advance(Math.max(1, t.coord.config.initialRebalanceDelayMs));
    await flush();
  }
  if (pending.some((p) => !p.settled)) throw new Error('formGroup: the joins did not complete together (initial rebalance delay 0?)');
  const joins: Record<string, JoinGroupResult> = {};
  const ids: Record<string, string> = {};
  clientIds.forEach((c, i) => {
    joins[c] = pending[i].value;
    ids[c] = pending[i].value.memberId;
  });
  const { generationId, leader } = joins[clientIds[0]];
  const byMember = Object.fromEntries(Object.entries(ids).map(([c, id]) => [id, c]));
  const assignments = Object.values(ids).map((memberId) => ({ memberId, assignment: Buffer.from(`assign:${byMember[memberId]}`) }));
  const order = [byMember[leader], ...clientIds.filter((c) => ids[c] !== leader)];
  const held = order.map((c) =>
    track(
      t.coord.syncGroup({ groupId, generationId, memberId: ids[c], groupInstanceId: null, assignments: ids[c] === leader ? assignments : [] }),
    ),
  );
  await flush();
  const syncs: Record<string, SyncGroupResult> = {};
  order.forEach((c, i) => (syncs[c] = held[i].value));
  return { generationId, leader, ids, joins, syncs };
}
