/**
 * `spillway loadtest <scenario>`: runs a k6 scenario here (see run.ts), optionally on a private
 * stack (`--up`), polls the stack once a second for the report (backlog, ETA, shedding,
 * deliveries, permitted rate), waits (bounded) for the drain, runs the verifier, and writes
 * report.html and summary.json. Exit code: 99 thresholds crossed, 90 verifier failed, 104
 * invalid options, 107 script exception, 108 aborted by the script; else 0.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HELP, LoadtestConfigError, loadLoadtestConfig, type LoadtestConfig } from './config.ts';
import { OptionsError } from './options.ts';
import type { Poll, Recorder } from './recorder.ts';
import { renderReport } from './report.ts';
import { runScript, type RunResult } from './run.ts';
import { allocatePorts, newAdminToken, readProfile, startStack, type Stack } from './stack.ts';
import { ThresholdError } from './thresholds.ts';
import { verdictText, verify, waitForDrain, type Verdict, type VerifyTarget } from './verify.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCENARIOS_DIR = path.resolve(here, '../scenarios');

export const EXIT = { ok: 0, verifyFailed: 90, thresholds: 99, invalidOptions: 104, externalAbort: 105, scriptException: 107, aborted: 108 } as const;

/** The private stack of this run, stopped on Ctrl-C too. */
let activeStack: Stack | null = null;

function installInterruptHandlers(): void {
  // A closed pipe on our output (e.g. `| head`) must not kill the run and orphan the stack.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  const onSignal = (sig: string) => {
    process.stderr.write(`\n${sig}: stopping${activeStack ? ' the stack' : ''}…\n`);
    void (activeStack?.stop() ?? Promise.resolve()).finally(() => process.exit(EXIT.externalAbort));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
}

export function resolveScenario(name: string): string {
  if (fs.existsSync(name) && fs.statSync(name).isFile()) return path.resolve(name);
  const file = path.join(SCENARIOS_DIR, `${name.replace(/\.js$/, '')}.js`);
  if (fs.existsSync(file)) return file;
  const known = fs
    .readdirSync(SCENARIOS_DIR)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.replace(/\.js$/, ''));
  throw new LoadtestConfigError([`no scenario '${name}' (known: ${known.join(', ')}; or give a path to a k6 script)`]);
}

interface Poller {
  stop(): void;
  suffix(): string;
}

function startPoller(recorder: Recorder, t: VerifyTarget): Poller {
  let last: Poll = {};
  let busy = false;
  const get = async <T>(url: string, headers: Record<string, string> = {}): Promise<T | null> => {
    try {
      const r = await fetch(url, { headers, signal: AbortSignal.timeout(2500) });
      return r.ok ? ((await r.json()) as T) : null;
    } catch {
      return null;
    }
  };
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const auth = { authorization: `Bearer ${t.adminToken}` };
      const [backlog, stats] = await Promise.all([
        t.adminToken === ''
          ? null
          : get<{ backlog: number; etaSeconds: number; shedding: boolean; downstreams: { downstream: string; ratePerSecond: number }[] }>(`${t.gatewayUrl}/v1/admin/backlog`, auth),
        get<{ received: number; perSecond?: { second: number; count: number }[] }>(`${t.downstreamUrl}/stats`),
      ]);
      const p: Poll = {};
      if (backlog) {
        p.backlog = backlog.backlog;
        p.etaSeconds = backlog.etaSeconds;
        p.shedding = backlog.shedding;
        const view = backlog.downstreams.find((d) => d.downstream === t.downstreamName) ?? backlog.downstreams[0];
        if (view) p.permittedRate = view.ratePerSecond;
      }
      if (stats) {
        p.delivered = stats.received;
        p.perSecond = stats.perSecond;
      }
      recorder.poll(p);
      last = p;
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), 1000);
  void tick();
  return {
    stop: () => clearInterval(timer),
    suffix: () =>
      last.backlog === undefined ? '' : `  | backlog ${last.backlog} ETA ${Math.round(last.etaSeconds ?? 0)}s${last.shedding ? ' SHEDDING' : ''}${last.delivered !== undefined ? ` delivered ${last.delivered}` : ''}`,
  };
}

function progressWriter(quiet: boolean): ((line: string, final: boolean) => void) | null {
  if (quiet) return null;
  const tty = process.stderr.isTTY === true;
  let n = 0;
  return (line, final) => {
    if (tty) process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else if (final || n++ % 5 === 0) process.stderr.write(`${line}\n`);
  };
}

function writeOutputs(outDir: string, outputs: Record<string, string> | null): void {
  if (!outputs) return;
  for (const [k, v] of Object.entries(outputs)) {
    if (k === 'stdout') process.stdout.write(v.endsWith('\n') ? v : `${v}\n`);
    else if (k === 'stderr') process.stderr.write(v);
    else {
      const file = path.isAbsolute(k) ? k : path.resolve(k);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, v);
    }
  }
}

export async function main(argv: readonly string[]): Promise<void> {
  let config: LoadtestConfig;
  let script: string;
  try {
    config = loadLoadtestConfig(argv);
    if (config.help) {
      process.stdout.write(`${HELP}\n`);
      return;
    }
    script = resolveScenario(config.scenario ?? '');
  } catch (err) {
    if (err instanceof LoadtestConfigError) {
      process.stderr.write(`spillway loadtest: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  installInterruptHandlers();
  const code = await runLoadtest(config, script);
  process.exit(code);
}

export async function runLoadtest(config: LoadtestConfig, scriptPath: string): Promise<number> {
  const log = (l: string) => process.stderr.write(`${l}\n`);
  const scenarioName = path.basename(scriptPath).replace(/\.js$/, '');
  const startedAt = new Date();
  const outDir = path.resolve(config.out ?? path.join(SCENARIOS_DIR, '..', 'results', `${scenarioName}-${startedAt.toISOString().replace(/[:.]/g, '-')}`));
  fs.mkdirSync(outDir, { recursive: true });

  const target: VerifyTarget = {
    gatewayUrl: config.baseUrl,
    adminToken: config.adminToken,
    downstreamUrl: config.downstreamUrl,
    downstreamName: config.downstreamName,
    kafkaBrokers: config.kafkaBrokers,
    topic: config.topic,
    dlqTopic: config.dlqTopic,
    rate: config.rate !== null ? { rate: config.rate, burst: config.burst ?? 0 } : null,
  };
  const env = { ...config.env, SUMMARY_DIR: outDir };
  let stack: Stack | null = null;
  let ports: Awaited<ReturnType<typeof allocatePorts>> | null = null;
  if (config.up) {
    ports = await allocatePorts();
    const token = newAdminToken();
    target.gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
    target.downstreamUrl = `http://127.0.0.1:${ports.downstream}`;
    target.adminToken = token;
    target.kafkaBrokers = `127.0.0.1:${ports.broker}`;
    Object.assign(env, { BASE_URL: target.gatewayUrl, ADMIN_TOKEN: token, DOWNSTREAM_URL: target.downstreamUrl });
  } else {
    Object.assign(env, { BASE_URL: target.gatewayUrl, ADMIN_TOKEN: target.adminToken, DOWNSTREAM_URL: target.downstreamUrl });
  }

  let poller: Poller | null = null;
  let result: RunResult;
  try {
    result = await runScript({
      scriptPath,
      env,
      progress: progressWriter(config.quiet),
      statusSuffix: () => poller?.suffix() ?? '',
      log,
      beforeSetup: async (s) => {
        if (ports !== null) {
          stack = await startStack(readProfile(s.exports.spillwayStack), ports, target.adminToken, log);
          activeStack = stack;
          if (target.rate === null) target.rate = stack.rate;
        }
        if (!config.keepLedger) await fetch(`${target.downstreamUrl}/stats`, { method: 'DELETE' }).catch(() => undefined);
      },
      onStart: (rec) => {
        poller = startPoller(rec, target);
      },
    });
  } catch (err) {
    (poller as Poller | null)?.stop();
    await (stack as Stack | null)?.stop();
    if (err instanceof OptionsError || err instanceof ThresholdError) {
      log(`spillway loadtest: ${err.message}`);
      return EXIT.invalidOptions;
    }
    log(`spillway loadtest: the script failed: ${(err as Error).stack ?? String(err)}`);
    return EXIT.scriptException;
  }

  writeOutputs(outDir, result.summaryOutputs);
  for (const r of result.thresholds) if (!r.ok) log(`✗ threshold ${r.threshold.key} '${r.threshold.source}' crossed (actual ${r.actual.toFixed(3)})`);
  if (result.aborted) log(`test aborted: ${result.aborted}`);
  if (result.syncCallsDuringRun > 0) log(`note: ${result.syncCallsDuringRun} synchronous HTTP calls ran inside iterations (they block every VU here; use http.asyncRequest)`);
  const dropped = Object.values(result.executors).reduce((n, e) => n + e.dropped, 0);

  let verdict: Verdict | null = null;
  if (config.verify) {
    try {
      const accepted = [...result.recorder.accepted.values()];
      const progress = progressWriter(config.quiet);
      const drain = await waitForDrain(target, accepted, config.drainTimeoutS * 1000, (n) => progress?.(`draining: ${n} accepted orders not yet delivered or dead-lettered${(poller as Poller | null)?.suffix() ?? ''}`, n === 0));
      verdict = await verify(target, { accepted, keyConflicts: result.recorder.keyConflicts, noAnswer: result.recorder.noAnswer }, drain);
      process.stdout.write(`${verdictText(verdict)}\n`);
    } catch (err) {
      log(`verifier could not run: ${(err as Error).message}`);
      verdict = {
        ok: false,
        checks: [{ name: 'verifier ran', ok: false, detail: (err as Error).message }],
        numbers: { accepted: result.recorder.acceptedCount, delivered: 0, deadLettered: 0, buffered: 0, lost: 0, notInLog: 0, ledgerReceived: 0, ledgerDuplicates: 0, unattributedDeliveries: 0, maxPerSecond: 0, rateLimit: null, brokerLag: null, dlqTopicRecords: null, skus: [] },
        drain: { drained: false, waitedMs: 0 },
        lostSample: [],
      };
    }
  }
  (poller as Poller | null)?.stop();

  const thresholdAbort = result.aborted?.startsWith('threshold') === true;
  const exitCode = !result.thresholdsOk || thresholdAbort ? EXIT.thresholds : result.aborted ? EXIT.aborted : verdict !== null && !verdict.ok ? EXIT.verifyFailed : EXIT.ok;
  const timeline = result.recorder.timeline();
  const notes = [
    `executors: ${Object.entries(result.executors)
      .map(([n, e]) => `${n} started ${e.started}, dropped ${e.dropped}, interrupted ${e.interrupted}, VUs max ${e.maxActiveVus}/${e.allocatedVus}`)
      .join('; ')}`,
    `intake: ${result.recorder.acceptedCount} orders accepted (${result.recorder.replays} idempotent replays), ${result.recorder.rejectedCount} rejected (${[...result.recorder.rejected].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}), ${dropped} dropped iterations, ${result.scriptErrors} iteration errors`,
    ...(config.up ? ['stack: a private `spillway up` started for this run'] : []),
  ];
  const summaryJson = {
    scenario: scenarioName,
    script: scriptPath,
    startedAt: startedAt.toISOString(),
    target: { gateway: target.gatewayUrl, downstream: target.downstreamUrl, kafkaBrokers: target.kafkaBrokers, privateStack: config.up },
    exitCode,
    thresholds: result.thresholds.map((r) => ({ metric: r.threshold.key, threshold: r.threshold.source, actual: r.actual, ok: r.ok })),
    executors: result.executors,
    intake: {
      accepted: result.recorder.acceptedCount,
      replays: result.recorder.replays,
      rejected: Object.fromEntries(result.recorder.rejected),
      noAnswer: result.recorder.noAnswer,
      keyConflicts: result.recorder.keyConflicts,
      scriptErrors: result.scriptErrors,
    },
    verdict,
    k6: result.summary,
    timeline,
  };
  fs.writeFileSync(path.join(outDir, 'summary.json'), `${JSON.stringify(summaryJson, null, 2)}\n`);
  fs.writeFileSync(
    path.join(outDir, 'report.html'),
    renderReport({ scenario: scenarioName, startedAt: startedAt.toISOString(), target: target.gatewayUrl, timeline, summary: result.summary, thresholds: result.thresholds, verdict, exitCode, notes }),
  );
  for (const n of notes) log(n);
  log(`report: ${path.join(outDir, 'report.html')}\nsummary: ${path.join(outDir, 'summary.json')}`);
  const s = stack as Stack | null;
  if (s !== null) {
    await s.stop();
    activeStack = null;
    log(`stack stopped (logs: ${s.logFile})`);
  }
  log(`exit code ${exitCode}${exitCode === EXIT.thresholds ? ' (thresholds crossed)' : exitCode === EXIT.verifyFailed ? ' (verifier failed)' : ''}`);
  return exitCode;
}
