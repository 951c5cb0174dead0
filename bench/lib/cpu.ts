/**
 * CPU accounting per phase, to tell who the bottleneck was: the server's CPU time (all its
 * threads, from /proc/PID/task/TID/schedstat, in ns), the bench process's own (kafkajs encoding
 * runs here), and how busy the whole machine was (from /proc/stat), so "broker-bound" and
 * "machine saturated by the client" can be told apart on a 2-core box. Steal time (time this VM's
 * CPUs had work but the host ran something else: other guests, or its own work such as emulating
 * this VM's disk) is counted apart from busy time, so a pass that ran while the host was
 * contended shows it there rather than only as a slower system (seen here: 20-26 % in some Redis
 * Streams passes, under 1 % in most others).
 */
import fs from 'node:fs';

export interface CpuMark {
  brokerNs: number;
  bench: NodeJS.CpuUsage;
  machineBusy: number;
  machineSteal: number;
  machineTotal: number;
}

/**
 * CPU time of every thread of `pid` (a node broker does its fsyncs and file I/O on libuv's pool
 * threads; nats-server is a Go program): the sum of /proc/PID/task/TID/schedstat. A thread that
 * exits between two marks takes its time with it; the servers measured here keep their threads.
 */
export function procCpuNs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
      } catch {
        // the thread exited meanwhile
      }
    }
    return ns;
  } catch {
    return Number.NaN;
  }
}

function machineTicks(): { busy: number; steal: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'latin1').split('\n')[0]; // "cpu  user nice system idle iowait irq softirq steal ..."
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3] + v[4];
  const steal = v[7] ?? 0;
  return { busy: total - idle - steal, steal, total };
}

export function cpuMark(brokerPid: number): CpuMark {
  const m = machineTicks();
  return { brokerNs: procCpuNs(brokerPid), bench: process.cpuUsage(), machineBusy: m.busy, machineSteal: m.steal, machineTotal: m.total };
}

export interface CpuUse {
  /** CPU seconds per wall second, so 1.0 = one core fully used. */
  brokerCores: number;
  benchCores: number;
  /** Fraction of all cores busy (any process, incl. kcat and other work on the machine); steal excluded. */
  machineBusyFraction: number;
  /** Fraction of all cores' time stolen by the hypervisor (/proc/stat steal). */
  machineStealFraction: number;
  brokerCpuMs: number;
  benchCpuMs: number;
}

export function cpuUse(before: CpuMark, after: CpuMark, wallMs: number): CpuUse {
  const brokerCpuMs = (after.brokerNs - before.brokerNs) / 1e6;
  const benchCpuMs = (after.bench.user + after.bench.system - before.bench.user - before.bench.system) / 1000;
  const total = after.machineTotal - before.machineTotal;
  return {
    brokerCores: brokerCpuMs / wallMs,
    benchCores: benchCpuMs / wallMs,
    machineBusyFraction: total > 0 ? (after.machineBusy - before.machineBusy) / total : Number.NaN,
    machineStealFraction: total > 0 ? (after.machineSteal - before.machineSteal) / total : Number.NaN,
    brokerCpuMs,
    benchCpuMs,
  };
}
