/**
 * One kafkajs producing process (entry point, spawned by kafkajs-fleet.ts). It connects its
 * producers, says `ready`, waits for `go` on stdin, produces its record range, then reports
 * timings and its own CPU time as one JSON line and exits. Nothing else goes to stdout.
 */
import readline from 'node:readline';
import { connectProducers, disconnectProducers, produceRange } from './kafkajs-produce.ts';
import { workerTask, type WorkerMessage } from './kafkajs-fleet.ts';

function send(msg: WorkerMessage): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

async function waitForGo(): Promise<void> {
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === 'go') {
      rl.close();
      return;
    }
  }
  throw new Error('stdin closed before go');
}

async function main(): Promise<void> {
  const task = workerTask.parse(JSON.parse(process.argv[2] ?? '{}'));
  const producers = await connectProducers(task.bootstrap, task.producers);
  try {
    send({ type: 'ready' });
    await waitForGo();
    const cpu0 = process.cpuUsage();
    const r = await produceRange(producers, task.range);
    const cpu = process.cpuUsage(cpu0);
    send({ type: 'done', ms: r.ms, latenciesMs: r.latenciesMs, cpuMs: (cpu.user + cpu.system) / 1000 });
  } finally {
    await disconnectProducers(producers);
  }
}

main().catch((err: unknown) => {
  send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exitCode = 1;
});
