/**
 * Graceful shutdown: on SIGTERM/SIGINT run the registered closers in reverse order of
 * registration (last started, first stopped), each with a deadline, then exit.
 */
import type { Logger } from './logger.ts';

type Closer = { name: string; close: () => Promise<void> };

export class Shutdown {
  private readonly closers: Closer[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly timeoutMs = 30_000,
  ) {}

  add(name: string, close: () => Promise<void>): void {
    this.closers.push({ name, close });
  }

  /** Install SIGTERM/SIGINT handlers that stop everything and exit the process. */
  installSignalHandlers(): void {
    const onSignal = (signal: NodeJS.Signals) => {
      this.log.info({ signal }, 'shutting down');
      this.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          this.log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }

  stop(): Promise<void> {
    this.stopping ??= this.run();
    return this.stopping;
  }

  private async run(): Promise<void> {
    for (const c of [...this.closers].reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${c.name} did not stop within ${this.timeoutMs} ms`)), this.timeoutMs);
      });
      try {
        await Promise.race([c.close(), deadline]);
        this.log.info({ part: c.name }, 'stopped');
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
