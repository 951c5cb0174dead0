/**
 * Entry of the load-generator process (forked by bench/gateway.ts): takes a LoadConfig, then
 * runs steps on command and reports marks (start/end of each measured window, so the parent can
 * read every process's CPU at those instants) and the step's statistics. Exits with its parent.
 */
import { OpenLoadGenerator } from './loadgen.ts';
import type { FromGenerator, ToGenerator } from './protocol.ts';

function send(m: FromGenerator): void {
  process.send?.(m);
}

let gen: OpenLoadGenerator | null = null;

process.on('disconnect', () => process.exit(0));
process.on('message', (raw: unknown) => {
  const m = raw as ToGenerator;
  switch (m.type) {
    case 'config':
      gen = new OpenLoadGenerator(m, (id, phase) => send({ type: 'mark', id, phase }));
      gen.warmConnections().then(
        (connections) => send({ type: 'ready', connections }),
        (err: unknown) => send({ type: 'failed', message: String(err) }),
      );
      break;
    case 'step':
      if (gen === null) {
        send({ type: 'failed', message: 'step before config' });
        break;
      }
      gen.run(m).then(
        (stats) => send({ type: 'result', stats }),
        (err: unknown) => send({ type: 'failed', message: String(err) }),
      );
      break;
    case 'exit':
      gen?.close();
      process.exit(0);
  }
});
