/**
 * Memory stays flat whatever the backlog: writes a multi-GB backlog into a broker with kcat,
 * then reads all of it back with kcat while sampling the broker's RSS every 100 ms, and prints
 * RSS before, during and after next to the backlog size (the reference: RSS must not grow with it).
 *
 *   npm run bench:backlog                     # 2 GiB backlog (BACKLOG_MB=2048)
 *   BACKLOG_MB=256 npm run bench:backlog      # quick
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startBrokerProcess, tempDir } from '../lib/src/testing/processes.ts';
import { KCAT_START_OFFSET } from './lib/kcat.ts';

const BACKLOG_MB = Number(process.env.BACKLOG_MB ?? 2048);
const RECORD = 1000;
const TOPIC = 'backlog';

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function kcat(args: string[], stdin: 'pipe' | 'ignore'): Promise<{ code: number | null; lines: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn('kcat', args, { stdio: [stdin, 'pipe', 'inherit'] });
    let lines = 0;
    p.stdout?.on('data', (d: Buffer) => {
      for (const b of d) if (b === 10) lines++;
    });
    p.once('error', reject);
    p.once('close', (code) => resolve({ code, lines }));
    if (stdin === 'pipe' && p.stdin) {
      const line = Buffer.alloc(RECORD, 'x');
      line[RECORD - 1] = 10;
      const chunk = Buffer.concat(Array.from({ length: 1024 }, () => line));
      let left = Math.ceil((BACKLOG_MB * 1024 * 1024) / chunk.length);
      const write = () => {
        while (left > 0) {
          left--;
          if (!p.stdin!.write(chunk)) return p.stdin!.once('drain', write);
        }
        p.stdin!.end();
      };
      write();
    }
  });
}

async function main(): Promise<void> {
  const dataDir = tempDir('backlog');
  const broker = await startBrokerProcess({ dataDir });
  const samples: { phase: string; mb: number }[] = [];
  let phase = 'idle';
  const timer = setInterval(() => samples.push({ phase, mb: rssMb(broker.proc.pid!) }), 100);
  try {
    await new Promise((r) => setTimeout(r, 500));
    phase = 'produce';
    const t0 = Date.now();
    const produced = await kcat(['-P', '-b', broker.bootstrap, '-t', TOPIC, '-X', 'acks=all', '-X', 'linger.ms=5', '-X', 'batch.num.messages=10000'], 'pipe');
    if (produced.code !== 0) throw new Error(`kcat -P exited ${produced.code}`);
    const produceS = (Date.now() - t0) / 1000;
    const onDisk = du(path.join(dataDir, 'topics', TOPIC));
    phase = 'consume';
    const t1 = Date.now();
    const consumed = await kcat(
      ['-C', '-b', broker.bootstrap, '-t', TOPIC, '-o', KCAT_START_OFFSET, '-e', '-q', '-X', 'fetch.wait.max.ms=20', '-X', 'max.partition.fetch.bytes=4194304'],
      'ignore',
    );
    const consumeS = (Date.now() - t1) / 1000;
    phase = 'after';
    await new Promise((r) => setTimeout(r, 500));
    const expected = Math.ceil((BACKLOG_MB * 1024 * 1024) / (RECORD * 1024)) * 1024;
    const peak = (p: string) => Math.max(...samples.filter((s) => s.phase === p).map((s) => s.mb));
    const rows = [
      ['backlog on disk', `${(onDisk / 2 ** 30).toFixed(2)} GiB (${expected} records of ${RECORD} B)`],
      ['produce (kcat, acks=all)', `${produceS.toFixed(1)} s, ${((expected / produceS) | 0).toLocaleString()} rec/s`],
      ['consume (kcat)', `${consumeS.toFixed(1)} s, ${((consumed.lines / consumeS) | 0).toLocaleString()} rec/s, ${consumed.lines === expected ? 'all records read' : `MISMATCH ${consumed.lines}/${expected}`}`],
      ['broker RSS idle', `${peak('idle').toFixed(0)} MB`],
      ['broker RSS peak while producing', `${peak('produce').toFixed(0)} MB`],
      ['broker RSS peak while consuming', `${peak('consume').toFixed(0)} MB`],
      ['verdict', peak('consume') < 300 && consumed.lines === expected ? 'PASS: RSS flat (< 300 MB) while reading the whole backlog' : 'MISS'],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(34)} ${v}`);
    if (consumed.lines !== expected) process.exitCode = 1;
  } finally {
    clearInterval(timer);
    await broker.kill('SIGTERM');
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function du(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? du(p) : fs.statSync(p).size;
  }
  return n;
}

await main();
