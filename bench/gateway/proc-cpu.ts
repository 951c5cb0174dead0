/**
 * CPU time of whole processes (all threads) from /proc/<pid>/stat (utime + stime, in clock
 * ticks), their read/write system-call counts from /proc/<pid>/io, and how busy the whole machine was from /proc/stat, so per-request CPU of every
 * component (server, broker, redis, load generator) comes from one place and one clock.
 * Linux only; a process that has exited reads as NaN.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

const TICKS_PER_S = clockTicksPerSecond();

/** CPU milliseconds (user + system, every thread) the process has used so far. */
export function processCpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state), so utime (field 14) is fields[11] and stime (15) fields[12].
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_S;
  } catch {
    return Number.NaN;
  }
}

export interface MachineTicks {
  /** Ticks the CPUs ran something in this VM (user, nice, system, irq, softirq). */
  busy: number;
  /** Ticks the hypervisor gave this VM's CPUs to someone else. */
  steal: number;
  total: number;
}

export function machineTicks(): MachineTicks {
  const line = fs.readFileSync('/proc/stat', 'latin1').split('\n')[0]; // "cpu  user nice system idle iowait irq softirq steal ..."
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: v[0] + v[1] + v[2] + v[5] + v[6], steal: v[7] ?? 0, total };
}

/** Read- and write-family system calls the process has made so far (/proc/<pid>/io syscr, syscw). */
export function processSyscalls(pid: number): { reads: number; writes: number } {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'latin1');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
    return { reads: field('syscr'), writes: field('syscw') };
  } catch {
    return { reads: Number.NaN, writes: Number.NaN };
  }
}

export interface CpuSnapshot {
  atMs: number;
  byName: Record<string, number>;
  syscalls: Record<string, { reads: number; writes: number }>;
  machine: MachineTicks;
}

export function snapshot(pids: Readonly<Record<string, number>>): CpuSnapshot {
  const byName: Record<string, number> = {};
  const syscalls: Record<string, { reads: number; writes: number }> = {};
  for (const [name, pid] of Object.entries(pids)) {
    byName[name] = processCpuMs(pid);
    syscalls[name] = processSyscalls(pid);
  }
  return { atMs: performance.now(), byName, syscalls, machine: machineTicks() };
}

export interface CpuDelta {
  wallMs: number;
  /** CPU ms per component over the interval. */
  cpuMs: Record<string, number>;
  /** CPU seconds per wall second per component (1.0 = one core). */
  cores: Record<string, number>;
  /** Read- and write-family system calls per component over the interval. */
  syscalls: Record<string, { reads: number; writes: number }>;
  /** Fraction of all cores busy (any process on the machine). */
  machineBusy: number;
  /** Cores busy with processes not listed (other work on the machine during the interval). */
  othersCores: number;
  /** Cores taken by the hypervisor (steal time). */
  stealCores: number;
}

export function delta(a: CpuSnapshot, b: CpuSnapshot): CpuDelta {
  const wallMs = b.atMs - a.atMs;
  const cpuMs: Record<string, number> = {};
  const cores: Record<string, number> = {};
  const syscalls: Record<string, { reads: number; writes: number }> = {};
  for (const name of Object.keys(a.byName)) {
    cpuMs[name] = b.byName[name] - a.byName[name];
    cores[name] = cpuMs[name] / wallMs;
    syscalls[name] = { reads: b.syscalls[name].reads - a.syscalls[name].reads, writes: b.syscalls[name].writes - a.syscalls[name].writes };
  }
  const total = b.machine.total - a.machine.total;
  const busyCores = (((b.machine.busy - a.machine.busy) / TICKS_PER_S) * 1000) / wallMs;
  const listed = Object.values(cores).reduce((x, y) => x + y, 0);
  const stealCores = (((b.machine.steal - a.machine.steal) / TICKS_PER_S) * 1000) / wallMs;
  return { wallMs, cpuMs, cores, syscalls, machineBusy: total > 0 ? (b.machine.busy - a.machine.busy) / total : Number.NaN, othersCores: Math.max(0, busyCores - listed), stealCores };
}

/**
 * Waits (at most maxMs) until the whole machine has been below `limitCores` busy for two
 * consecutive one-second samples, so a step search does not start while other work runs.
 */
export async function waitForQuiet(maxMs: number, limitCores: number): Promise<{ waitedMs: number; busyCores: number; quiet: boolean }> {
  const started = performance.now();
  let quietSamples = 0;
  let busyCores = Number.NaN;
  let prev = machineTicks();
  while (performance.now() - started < maxMs) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = machineTicks();
    busyCores = (now.busy - prev.busy) / TICKS_PER_S;
    prev = now;
    quietSamples = busyCores < limitCores ? quietSamples + 1 : 0;
    if (quietSamples >= 2) return { waitedMs: performance.now() - started, busyCores, quiet: true };
  }
  return { waitedMs: performance.now() - started, busyCores, quiet: false };
}
