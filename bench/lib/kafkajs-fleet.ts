/**
 * Runs the kafkajs produce phase in `processes` child processes (kafkajs-worker.ts), each with
 * its share of the records, several producers and several sends in flight. kafkajs encodes in
 * JS on the producing thread, so one process tops out at about one core; more processes show
 * what the broker takes from several gateway instances. Start-up (tsx, kafkajs load, connect)
 * happens before the clock starts: every worker reports `ready`, then all get `go` at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { BenchError, cpuProfFlags, stopChild, withTimeout, type Cleanup } from './procs.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORKER = path.join(HERE, 'kafkajs-worker.ts');

export const workerTask = z.object({
  bootstrap: z.string(),
  producers: z.number().int().positive(),
  range: z.object({ topic: z.string(), start: z.number().int().min(0), end: z.number().int().min(0), inFlightPerProducer: z.number().int().positive(), batchSize: z.number().int().positive() }),
});
export type WorkerTask = z.infer<typeof workerTask>;

const workerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('done'), ms: z.number(), latenciesMs: z.array(z.number()), cpuMs: z.number() }),
  z.object({ type: z.literal('error'), message: z.string() }),
]);
export type WorkerMessage = z.infer<typeof workerMessage>;

export interface FleetOptions {
  bootstrap: string;
  topic: string;
  records: number;
  processes: number;
  producersPerProcess: number;
  inFlightPerProducer: number;
  batchSize: number;
  timeoutMs: number;
  cleanup: Cleanup;
}

export interface FleetResult {
  ms: number;
  latenciesMs: number[];
  /** CPU time the producing processes spent inside the timed window. */
  workerCpuMs: number;
}

interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
  done: Promise<{ latenciesMs: number[]; cpuMs: number }>;
  exited: Promise<void>;
}

function startWorker(task: WorkerTask, cleanup: Cleanup): Worker {
  const prof = cpuProfFlags(process.env.BENCH_KAFKAJS_PROF);
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', WORKER, JSON.stringify(task)], { cwd: path.resolve(HERE, '..', '..'), stdio: ['pipe', 'pipe', 'pipe'] });
  cleanup.add('kafkajs worker', async () => {
    await stopChild(child, 5_000);
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const messages: WorkerMessage[] = [];
  const waiters: (() => void)[] = [];
  let ended = false;
  if (!child.stdout) throw new BenchError('KAFKAJS_WORKER', 'worker has no stdout');
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      json = undefined;
    }
    const parsed = workerMessage.safeParse(json);
    if (parsed.success) messages.push(parsed.data);
    else stderr += `unexpected worker output: ${line}\n`;
    for (const w of waiters.splice(0)) w();
  });
  child.once('close', () => {
    ended = true;
    for (const w of waiters.splice(0)) w();
  });
  const next = async <T extends WorkerMessage['type']>(type: T): Promise<Extract<WorkerMessage, { type: T }>> => {
    for (;;) {
      const error = messages.find((m) => m.type === 'error');
      if (error && error.type === 'error') throw new BenchError('KAFKAJS_WORKER', `kafkajs worker failed: ${error.message}`);
      const m = messages.find((x): x is Extract<WorkerMessage, { type: T }> => x.type === type);
      if (m) return m;
      if (ended) throw new BenchError('KAFKAJS_WORKER', `kafkajs worker exited (${child.exitCode ?? child.signalCode}) before '${type}'; stderr:\n${stderr.slice(0, 4000)}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const exited = new Promise<void>((resolve) => (ended ? resolve() : child.once('close', () => resolve())));
  const ready = next('ready').then(() => undefined);
  const done = next('done');
  // Awaited later (or never, if start-up fails): mark handled now so a failure cannot become an
  // unhandled rejection that kills the bench before its cleanup runs.
  ready.catch(() => undefined);
  done.catch(() => undefined);
  return { child, ready, done, exited };
}

export async function kafkajsProduceFleet(o: FleetOptions): Promise<FleetResult> {
  const workers: Worker[] = [];
  for (let i = 0; i < o.processes; i++) {
    const start = Math.floor((o.records * i) / o.processes);
    const end = Math.floor((o.records * (i + 1)) / o.processes);
    const range = { topic: o.topic, start, end, inFlightPerProducer: o.inFlightPerProducer, batchSize: o.batchSize };
    workers.push(startWorker({ bootstrap: o.bootstrap, producers: o.producersPerProcess, range }, o.cleanup));
  }
  await withTimeout(Promise.all(workers.map((w) => w.ready)), 60_000, 'kafkajs workers start-up');
  const started = performance.now();
  for (const w of workers) w.child.stdin?.write('go\n');
  const results = await withTimeout(Promise.all(workers.map((w) => w.done)), o.timeoutMs, 'kafkajs produce');
  const ms = performance.now() - started;
  for (const w of workers) w.child.stdin?.end();
  // Let them disconnect and exit, so their CPU does not spill into the next phase.
  await withTimeout(Promise.all(workers.map((w) => w.exited)), 30_000, 'kafkajs workers exit');
  return { ms, latenciesMs: results.flatMap((r) => r.latenciesMs), workerCpuMs: results.reduce((a, r) => a + r.cpuMs, 0) };
}
