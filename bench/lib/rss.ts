/**
 * Samples a process's resident set size from /proc/PID/status every `intervalMs`, keeping the
 * overall peak and the peak within each named phase. The kernel's own high-water mark (VmHWM)
 * is read too: it also covers spikes between samples (e.g. while the bench's event loop is busy).
 */
import fs from 'node:fs';

export interface RssReading {
  rssBytes: number;
  hwmBytes: number;
}

export function readRss(pid: number): RssReading | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined; // the process has exited
  }
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private phase = 'start-up';
  readonly phasePeaks = new Map<string, number>();
  peakBytes = 0;
  samples = 0;
  lastHwmBytes = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  /** Starts attributing samples to `name` (takes one sample first, closing the previous phase). */
  enter(name: string): void {
    this.sample();
    this.phase = name;
    this.sample();
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sample(): void {
    const r = readRss(this.pid);
    if (!r) return;
    this.samples++;
    this.peakBytes = Math.max(this.peakBytes, r.rssBytes);
    this.lastHwmBytes = Math.max(this.lastHwmBytes, r.hwmBytes);
    this.phasePeaks.set(this.phase, Math.max(this.phasePeaks.get(this.phase) ?? 0, r.rssBytes));
  }
}
