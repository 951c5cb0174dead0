/** `spillway <command>`: dispatches to each component's main. Components load lazily. */
const commands: Record<string, { summary: string; load: () => Promise<{ main: (argv: readonly string[]) => Promise<void> }> }> = {
  broker: { summary: 'run the Kafka-protocol buffer broker', load: () => import('../buffer-broker/src/main.ts') },
  gateway: { summary: 'run the order API (HTTP)', load: () => import('../gateway/src/main.ts') },
  drainer: { summary: 'deliver buffered orders to downstreams at their rate', load: () => import('../drainer/src/main.ts') },
  downstream: { summary: 'run the slow-downstream simulator', load: () => import('../loadtest/src/downstream/main.ts') },
  up: { summary: 'run the whole stack on this machine (broker, gateway, drainer, simulator, Redis)', load: () => import('./up.ts') },
  loadtest: { summary: 'run a k6 load scenario here, verify the run end to end, write an HTML report', load: () => import('../loadtest/src/main.ts') },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return ['usage: spillway <command> [options]', '', 'commands:', ...rows, '', 'Run `spillway <command> --help` for its settings.'].join('\n');
}

export async function run(argv: readonly string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`spillway: unknown command '${name}'\n${usage()}\n`);
    process.exit(2);
  }
  const mod = await cmd.load();
  await mod.main(rest);
}
