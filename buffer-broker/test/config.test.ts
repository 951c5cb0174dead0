import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/src/config.ts';
import { run, spillwayBin } from '../../lib/src/testing/processes.ts';
import { loadBrokerConfig } from '../src/config.ts';

describe('broker config', () => {
  it('takes defaults, then env vars, then flags', () => {
    expect(loadBrokerConfig([], {}).config.port).toBe(9092);
    expect(loadBrokerConfig([], { SPILLWAY_BROKER_PORT: '9999' }).config.port).toBe(9999);
    const c = loadBrokerConfig(['--port', '1234', '--fsync', 'interval', '--auto-create-topics', 'false'], { SPILLWAY_BROKER_PORT: '9999' }).config;
    expect([c.port, c.fsync, c.autoCreateTopics]).toEqual([1234, 'interval', false]);
  });

  it('reports every bad setting at once', () => {
    let err: unknown;
    try {
      loadBrokerConfig(['--port', 'abc', '--fsync', 'sometimes'], { SPILLWAY_SEGMENT_BYTES: '-5' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/--port/);
    expect(problems).toMatch(/--fsync/);
    expect(problems).toMatch(/SPILLWAY_SEGMENT_BYTES/);
  });

  it('`spillway broker` exits 2 listing bad settings, prints config and help', async () => {
    const bad = await run(process.execPath, [spillwayBin, 'broker', '--port', 'x', '--retention-ms', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--port/);
    expect(bad.stderr).toMatch(/--retention-ms/);
    const printed = await run(process.execPath, [spillwayBin, 'broker', '--print-config', '--port', '7777']);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout.toString())).toMatchObject({ port: 7777, fsync: 'always', retentionMs: 259200000 });
    const help = await run(process.execPath, [spillwayBin, 'broker', '--help']);
    expect(help.stdout.toString()).toMatch(/SPILLWAY_BROKER_PORT/);
    const unknown = await run(process.execPath, [spillwayBin, 'nope']);
    expect(unknown.code).toBe(2);
  });
});
