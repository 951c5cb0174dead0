/** `spillway downstream`: reads settings, serves the slow-downstream simulator, stops cleanly on SIGTERM/SIGINT. */
import type { AddressInfo } from 'node:net';
import { ConfigError, helpText, redactedConfig } from '../../../lib/src/config.ts';
import { createLogger } from '../../../lib/src/logger.ts';
import { Shutdown } from '../../../lib/src/shutdown.ts';
import { downstreamSettings, loadDownstreamConfig, type DownstreamConfig } from './config.ts';
import { createDownstreamServer } from './server.ts';

export async function main(argv: readonly string[]): Promise<void> {
  let loaded;
  try {
    loaded = loadDownstreamConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spillway downstream: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (loaded.help) {
    process.stdout.write(
      `${helpText('downstream', 'A slow downstream for tests and load runs: POST /orders under a token bucket (429 + Retry-After), GET/DELETE /stats, PUT /control for faults.', downstreamSettings)}\n`,
    );
    return;
  }
  if (loaded.printConfig) {
    process.stdout.write(`${JSON.stringify(redactedConfig(downstreamSettings, loaded.config), null, 2)}\n`);
    return;
  }
  await startDownstream(loaded.config);
}

export async function startDownstream(config: DownstreamConfig): Promise<{ port: number; stop: () => Promise<void> }> {
  const log = createLogger('downstream', config.logLevel);
  const shutdown = new Shutdown(log);
  const { server, simulator } = createDownstreamServer({ initial: { rate: config.rate, burst: config.burst, latencyMs: config.latencyMs }, log });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: config.host, port, rate: config.rate, burst: config.burst, latencyMs: config.latencyMs }, 'downstream listening');
  shutdown.add('http', async () => {
    simulator.stopping = true;
    // No new connections; requests in their service time finish and are answered first.
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  });
  shutdown.installSignalHandlers();
  return { port, stop: () => shutdown.stop() };
}
