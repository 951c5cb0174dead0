/**
 * Summarises a V8 .cpuprofile (node --cpu-prof) of a drainer: the functions with the most self
 * time, and self time per source (node_modules package, node: internals, repo file, GC/idle).
 * Used to name the drainer's hot spots when its deliveries/s miss the target.
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds on the monotonic clock (the one process.hrtime reads). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Now on the profile's clock (µs, CLOCK_MONOTONIC like V8's profiler), to give summariseProfile a window. */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export interface ProfileLine {
  name: string;
  ms: number;
  /** Share of non-idle samples. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  busyMs: number;
  topFunctions: ProfileLine[];
  bySource: ProfileLine[];
}

function source(url: string, fn: string): string {
  if (url === '') return `(${fn || 'native'})`;
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const m = /\/work\/main\/(.*)$/.exec(url.replace(/^file:\/\//, ''));
  return m ? m[1] : url;
}

/** Self time within [fromUs, toUs] (monotonic µs; start-up and shutdown are left out). */
export function summariseProfile(file: string, window: { fromUs: number; toUs: number }, top = 25): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < window.fromUs || t > window.toUs) continue;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt / 1000);
  }
  const fnMs = new Map<string, number>();
  const srcMs = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    totalMs += ms;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') idleMs += ms;
    const name = `${functionName || '(anonymous)'} ${source(url, functionName)}${url ? `:${lineNumber + 1}` : ''}`;
    fnMs.set(name, (fnMs.get(name) ?? 0) + ms);
    const src = source(url, functionName);
    srcMs.set(src, (srcMs.get(src) ?? 0) + ms);
  }
  const busyMs = totalMs - idleMs;
  const lines = (m: Map<string, number>) =>
    [...m]
      .filter(([k]) => !k.includes('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms, share: ms / busyMs }));
  return { file, totalMs, busyMs, topFunctions: lines(fnMs), bySource: lines(srcMs) };
}

export function printProfile(s: ProfileSummary): void {
  console.log(`\nCPU profile of the one-process drainer from ready to the last delivery, ${s.file}: ${(s.busyMs / 1000).toFixed(1)} s busy of ${(s.totalMs / 1000).toFixed(1)} s`);
  console.log('  self time by source:');
  for (const l of s.bySource.slice(0, 15)) console.log(`    ${(l.share * 100).toFixed(1).padStart(5)}%  ${l.name}`);
  console.log('  top functions (self time):');
  for (const l of s.topFunctions) console.log(`    ${(l.share * 100).toFixed(1).padStart(5)}%  ${l.name}`);
}
