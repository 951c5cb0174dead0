/**
 * kcat (librdkafka) phases. kcat is a C client, so with it the broker, not the client, is what
 * limits throughput. Produce: kcat reads the pre-generated line file itself (the bench process
 * is idle meanwhile) and exits only once every message is acknowledged. Read-back: kcat consumes
 * from the beginning into a file until the end of every partition (-e) or the N-th record (-c);
 * each line is checked afterwards. End-to-end phases feed kcat -P through a pipe instead
 * (kcatStreamProducer), so the bench can stamp and pace the records.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { BenchError, runTool, stopChild, type Cleanup, type ToolRun } from './procs.ts';
import { ReadBackCheck, type ReadBackSummary } from './records.ts';

/** librdkafka settings of the produce phase (printed with the results). */
export const KCAT_PRODUCE_SETTINGS: Readonly<Record<string, string>> = {
  acks: '-1',
  'linger.ms': '5',
  'batch.num.messages': '10000',
};

/**
 * librdkafka settings of the read-back phases (printed with the results). A fetch that finds
 * nothing new long-polls for fetch.wait.max.ms; with -e the end of each partition is only known
 * after such an empty poll, so that wait is a fixed cost of every read-back (the default 500 ms
 * would be most of one): 5 ms here. A partition may return up to 4 MiB per fetch (default 1 MiB;
 * 16 MiB was slower, less of the read overlaps), and the consumer keeps up to 1M messages queued
 * ahead of the output (default 100,000), so fetching is not throttled by kcat's own queue.
 */
export const KCAT_CONSUME_SETTINGS: Readonly<Record<string, string>> = {
  'fetch.wait.max.ms': '5',
  'max.partition.fetch.bytes': '4194304',
  'queued.min.messages': '1000000',
};

/**
 * How every read-back's kcat is run, so that the C client costs as little as it can and the
 * broker is what the read-back measures (printed with the results). Measured with 12 readers of
 * 1M records here (strace -c, and the wall time of the whole read-back):
 * - stdout block-buffered at 4 MiB (coreutils stdbuf): by default glibc flushes a file every
 *   4 KiB, about 10,000 write calls per reader; -12 ms or so.
 * - glibc's malloc grows its heap 64 MiB at a time (glibc.malloc.top_pad) instead of page by
 *   page: librdkafka allocates from its broker thread's arena, which the default grows with one
 *   mprotect call each time, about 10,000 per reader; -45 ms or so.
 */
export const KCAT_READER_STDBUF = '4M';
export const KCAT_READER_ENV: Readonly<Record<string, string>> = { GLIBC_TUNABLES: 'glibc.malloc.top_pad=67108864' };

/** The read-back client settings outside librdkafka, as printed with the results. */
export function kcatReaderWrapping(): string {
  return `stdbuf -o ${KCAT_READER_STDBUF}, ${Object.entries(KCAT_READER_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}`;
}

/**
 * Where the read-backs start: the absolute offset 0 (every bench topic is fresh, so it is the
 * log start), not `beginning`. For `beginning` librdkafka (2.0.2 here) first asks the broker for
 * the offset (ListOffsets), and when kcat starts the partition before librdkafka has applied the
 * partition's leader from its first metadata answer (a race inside the client, about 3 runs in
 * 100 here), it logs "no current leader for partition: (re)starting offset query timer" and waits
 * a fixed 500 ms before asking: a read-back of 70 ms then takes 570 ms, and one slow partition
 * holds up a whole read-back. An absolute offset needs no query: the partition starts fetching as
 * soon as its leader is known (0 slow runs in 100).
 */
export const KCAT_START_OFFSET = '0';

function settingArgs(settings: Readonly<Record<string, string>>): string[] {
  return Object.entries(settings).flatMap(([k, v]) => ['-X', `${k}=${v}`]);
}

/** What every read-back's kcat -C starts with: the topic, the read-back settings, the start offset. */
function consumeArgs(bootstrap: string, topic: string): string[] {
  return ['-C', '-b', bootstrap, '-t', topic, ...settingArgs(KCAT_CONSUME_SETTINGS), '-o', KCAT_START_OFFSET];
}

export interface KcatProduceResult {
  ms: number;
  command: string;
}

export async function kcatProduce(opts: { kcat: string; bootstrap: string; topic: string; inputFile: string; timeoutMs: number }): Promise<KcatProduceResult> {
  const args = ['-P', '-b', opts.bootstrap, '-t', opts.topic, ...settingArgs(KCAT_PRODUCE_SETTINGS)];
  const fd = fs.openSync(opts.inputFile, 'r');
  try {
    const run = await runTool(opts.kcat, args, { stdin: fd, stdout: 'ignore', timeoutMs: opts.timeoutMs });
    // kcat reports delivery failures on stderr and may still exit 0, so any stderr is fatal here.
    if (run.code !== 0 || run.stderr.trim() !== '') {
      throw new BenchError('KCAT_PRODUCE', `kcat -P exited ${run.code ?? run.signal}; stderr:\n${run.stderr.slice(0, 4000)}`);
    }
    return { ms: run.ms, command: `kcat ${args.join(' ')} < records.txt` };
  } finally {
    fs.closeSync(fd);
  }
}

export interface KcatStreamProducer {
  /** Lines written here are produced, one record per line; end() it to let kcat flush and exit. */
  stdin: Writable;
  /** Resolves when kcat has exited, i.e. once every written record is acknowledged. */
  exit: Promise<ToolRun>;
  command: string;
  pid: number;
}

/**
 * kcat -P fed through a pipe by the bench (end-to-end phases): the bench decides when each record
 * is handed over, so it can stamp it with that time and pace the stream. Same settings as
 * kcatProduce. Any stderr output fails the phase (see kcatProduce).
 */
export function kcatStreamProducer(opts: { kcat: string; bootstrap: string; topic: string; timeoutMs: number; cleanup: Cleanup }): KcatStreamProducer {
  const args = ['-P', '-b', opts.bootstrap, '-t', opts.topic, ...settingArgs(KCAT_PRODUCE_SETTINGS)];
  const started = performance.now();
  const child = spawn(opts.kcat, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  opts.cleanup.add('kcat -P', async () => {
    child.stdin?.destroy();
    await stopChild(child, 5_000);
  });
  if (!child.stdin || child.pid === undefined) throw new BenchError('KCAT_PRODUCE', 'kcat -P did not start');
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exit = new Promise<ToolRun>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const run = { code, signal, stderr, ms: performance.now() - started };
      if (code !== 0 || stderr.trim() !== '') reject(new BenchError('KCAT_PRODUCE', `kcat -P exited ${code ?? signal}; stderr:\n${stderr.slice(0, 4000)}`));
      else resolve(run);
    });
  });
  exit.catch(() => undefined); // awaited by the caller; never an unhandled rejection meanwhile
  return { stdin: child.stdin, exit, command: `kcat ${args.join(' ')} < (paced pipe)`, pid: child.pid };
}

/** Splits a byte stream into newline-terminated lines without copying whole chunks. */
export class LineSplitter {
  private carry: Buffer | undefined;
  bytes = 0;

  constructor(private readonly onLine: (buf: Buffer, start: number, end: number) => void) {}

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    let pos = 0;
    if (this.carry) {
      const nl = chunk.indexOf(0x0a);
      if (nl < 0) {
        this.carry = Buffer.concat([this.carry, chunk]);
        return;
      }
      const line = Buffer.concat([this.carry, chunk.subarray(0, nl)]);
      this.carry = undefined;
      this.onLine(line, 0, line.length);
      pos = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(0x0a, pos);
      if (nl < 0) break;
      this.onLine(chunk, pos, nl);
      pos = nl + 1;
    }
    if (pos < chunk.length) this.carry = chunk.subarray(pos);
  }

  /** Bytes after the last newline (a truncated final line), 0 when the stream ended cleanly. */
  trailing(): number {
    return this.carry?.length ?? 0;
  }
}

export interface KcatConsumeResult {
  ms: number;
  command: string;
}

/**
 * `until: 'eof'` is the read-back of the spec (-e: exit once every partition reports its end,
 * which librdkafka learns from one fetch at the high watermark that long-polls for
 * fetch.wait.max.ms, see KCAT_CONSUME_SETTINGS). `until: 'count'` (-c N) exits at the N-th record
 * instead, so the difference between the two is that end-detection cost. kcat writes to
 * `outputFile` (on tmpfs), checked afterwards by verifyReadBack, so the bench takes no CPU from
 * kcat or the broker while the clock runs.
 */
export async function kcatConsume(opts: { kcat: string; bootstrap: string; topic: string; expected: number; until: 'eof' | 'count'; outputFile: string; timeoutMs: number }): Promise<KcatConsumeResult> {
  const stop = opts.until === 'eof' ? ['-e'] : ['-c', String(opts.expected)];
  const args = [...consumeArgs(opts.bootstrap, opts.topic), ...stop, '-q'];
  const out = fs.openSync(opts.outputFile, 'w');
  try {
    const run = await runTool('stdbuf', ['-o', KCAT_READER_STDBUF, opts.kcat, ...args], { stdin: 'ignore', stdout: out, timeoutMs: opts.timeoutMs, env: KCAT_READER_ENV });
    if (run.code !== 0) throw new BenchError('KCAT_CONSUME', `kcat -C exited ${run.code ?? run.signal}; stderr:\n${run.stderr.slice(0, 4000)}`);
    return { ms: run.ms, command: `kcat ${args.join(' ')}` };
  } finally {
    fs.closeSync(out);
  }
}

/**
 * Starts one reader per partition in the background and waits for them all; each leaves its exit
 * status in <out>.p<P>.rc and its stderr in <out>.p<P>.err. Arguments: kcat, out, partitions,
 * then kcat's arguments (each reader adds -p P -e -q).
 */
const READERS_SCRIPT = `kcat=$1; out=$2; n=$3; shift 3
p=0
while [ "$p" -lt "$n" ]; do
  { stdbuf -o ${KCAT_READER_STDBUF} "$kcat" "$@" -p "$p" -e -q > "$out.p$p" 2> "$out.p$p.err"; echo $? > "$out.p$p.rc"; } &
  p=$((p + 1))
done
wait`;

/**
 * The read-back with one kcat process per partition (-p P -e), all started at once and timed
 * from the start of the launching shell to its exit, when the last reader has exited. One kcat
 * is a pipeline of two threads (librdkafka's broker thread parses fetch answers, the main thread
 * writes the records out) whose hand-over limits it near 1M records/s here with the broker
 * mostly idle; several readers, one per partition as a consumer group would spread them, make the
 * broker the limit, which is what the read-back is meant to measure. The readers are started by
 * one sh, not by the bench: spawning 12 processes from the bench's large Node process takes
 * 30-35 ms here (each spawn forks it), from sh about 5 ms. Output goes to `${outputFile}.p<P>`;
 * check with verifyReadBack(files).
 */
export async function kcatConsumePartitions(opts: { kcat: string; bootstrap: string; topic: string; partitions: number; outputFile: string; timeoutMs: number }): Promise<KcatConsumeResult & { files: string[] }> {
  const files = Array.from({ length: opts.partitions }, (_, p) => `${opts.outputFile}.p${p}`);
  const side = files.flatMap((f) => [`${f}.rc`, `${f}.err`]);
  const kcatArgs = consumeArgs(opts.bootstrap, opts.topic);
  try {
    const run = await runTool('sh', ['-c', READERS_SCRIPT, 'sh', opts.kcat, opts.outputFile, String(opts.partitions), ...kcatArgs], {
      stdin: 'ignore',
      stdout: 'ignore',
      timeoutMs: opts.timeoutMs,
      env: KCAT_READER_ENV,
      group: true,
    });
    if (run.code !== 0) throw new BenchError('KCAT_CONSUME', `the readers' sh exited ${run.code ?? run.signal}; stderr:\n${run.stderr.slice(0, 4000)}`);
    files.forEach((f, p) => {
      const rc = readIfThere(`${f}.rc`).trim();
      if (rc !== '0') throw new BenchError('KCAT_CONSUME', `kcat -C -p ${p} exited ${rc === '' ? '(no status)' : rc}; stderr:\n${readIfThere(`${f}.err`).slice(0, 4000)}`);
    });
    return { ms: run.ms, files, command: `${opts.partitions} x kcat ${kcatArgs.join(' ')} -p <P> -e -q, started by one sh` };
  } catch (err) {
    for (const f of files) fs.rmSync(f, { force: true });
    throw err;
  } finally {
    for (const f of side) fs.rmSync(f, { force: true });
  }
}

function readIfThere(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Checks (then deletes) kcat output files: every record index exactly once across them, whole lines only. */
export function verifyReadBack(files: string | string[], expected: number): { bytes: number; check: ReadBackSummary; trailingBytes: number } {
  const list = typeof files === 'string' ? [files] : files;
  try {
    const check = new ReadBackCheck(expected);
    let bytes = 0;
    let trailingBytes = 0;
    for (const file of list) {
      const lines = new LineSplitter((buf, start, end) => check.add(buf, start, end - start));
      readFileInChunks(file, (chunk) => lines.push(chunk));
      bytes += lines.bytes;
      trailingBytes += lines.trailing();
    }
    const summary = check.summary();
    return { bytes, check: { ...summary, ok: summary.ok && trailingBytes === 0 }, trailingBytes };
  } finally {
    for (const file of list) fs.rmSync(file, { force: true });
  }
}

function readFileInChunks(file: string, onChunk: (chunk: Buffer) => void): void {
  const fd = fs.openSync(file, 'r');
  try {
    for (;;) {
      // A fresh buffer per read: LineSplitter may keep a view of the previous chunk's tail.
      const buf = Buffer.allocUnsafe(4 << 20);
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return;
      onChunk(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}
