/**
 * The bench's view of `spillway downstream`: start it unlimited, read and reset its ledger, and a
 * poller that timestamps the first and the last delivery of a run and keeps every per-second
 * bucket it has seen (GET /stats only returns the last 60 s, a run may be longer).
 */
import { startSpillway, type SpillwayProcess } from '../../lib/src/testing/processes.ts';

export interface Stats {
  received: number;
  distinctKeys: number;
  duplicates: number;
  maxPerSecond: number;
  byStatus: Record<string, number>;
  perSecond: { second: number; count: number }[];
}

export interface Simulator {
  proc: SpillwayProcess;
  ordersUrl: string;
  stats(): Promise<Stats>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** An unlimited simulator (rate 0) on a free port. */
export async function startSimulator(): Promise<Simulator> {
  const proc = await startSpillway(['downstream', '--port', '0', '--rate', '0', '--burst', '1'], {
    ready: (l) => l.msg === 'downstream listening',
    timeoutMs: 120_000,
  });
  const url = `http://127.0.0.1:${proc.readyLine.port as number}`;
  const call = async (method: string, p: string): Promise<unknown> => {
    const res = await fetch(`${url}${p}`, { method });
    const value: unknown = await res.json();
    if (res.status !== 200) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(value)}`);
    return value;
  };
  return {
    proc,
    ordersUrl: `${url}/orders`,
    stats: async () => (await call('GET', '/stats')) as Stats,
    reset: async () => {
      await call('DELETE', '/control');
      await call('DELETE', '/stats');
    },
    stop: async () => {
      await proc.kill('SIGTERM');
    },
  };
}

/**
 * Polls GET /stats every `intervalMs`. `firstAt` is the midpoint between the last poll without
 * deliveries and the first with some; `doneAt` the first poll that saw `target` distinct keys
 * (so both carry at most one interval of error, and the run's own start-up is excluded).
 */
export class StatsPoller {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private lastEmptyAt = performance.now();
  firstAt: number | undefined;
  doneAt: number | undefined;
  last: Stats | undefined;
  /** Every per-second bucket seen (epoch second → count; later polls overwrite earlier ones). */
  readonly buckets = new Map<number, number>();
  private error: unknown;

  constructor(
    private readonly sim: Simulator,
    private readonly target: number,
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    this.lastEmptyAt = performance.now();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
  }

  async poll(): Promise<Stats | undefined> {
    if (this.inFlight) return this.last;
    this.inFlight = true;
    try {
      const s = await this.sim.stats();
      const at = performance.now();
      this.last = s;
      this.error = undefined;
      for (const b of s.perSecond) this.buckets.set(b.second, b.count);
      if (s.received === 0) this.lastEmptyAt = at;
      else this.firstAt ??= (this.lastEmptyAt + at) / 2;
      if (this.doneAt === undefined && s.distinctKeys >= this.target) this.doneAt = at;
      return s;
    } catch (err) {
      this.error = err;
      return undefined;
    } finally {
      this.inFlight = false;
    }
  }

  /** Throws if the latest poll failed (the simulator stopped answering). */
  check(): void {
    if (this.error !== undefined) throw new Error(`GET /stats failed: ${String(this.error)}`);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
