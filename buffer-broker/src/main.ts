/** `spillway broker`: reads settings, starts the broker, stops it cleanly on SIGTERM/SIGINT. */
import { ConfigError, helpText, redactedConfig } from '../../lib/src/config.ts';
import { createLogger } from '../../lib/src/logger.ts';
import { Shutdown } from '../../lib/src/shutdown.ts';
import { startBroker } from './broker.ts';
import { brokerSettings, loadBrokerConfig } from './config.ts';

export async function main(argv: readonly string[]): Promise<void> {
  let loaded;
  try {
    loaded = loadBrokerConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spillway broker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (loaded.help) {
    process.stdout.write(`${helpText('broker', 'A durable, partitioned log speaking the Apache Kafka protocol.', brokerSettings)}\n`);
    return;
  }
  if (loaded.printConfig) {
    process.stdout.write(`${JSON.stringify(redactedConfig(brokerSettings, loaded.config), null, 2)}\n`);
    return;
  }
  const config = loaded.config;
  const log = createLogger('broker', config.logLevel);
  const shutdown = new Shutdown(log);
  let broker;
  try {
    broker = await startBroker(config, log);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spillway broker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  shutdown.add('broker', broker.stop);
  shutdown.installSignalHandlers();
}
