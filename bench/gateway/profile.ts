/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and summarises where a server's CPU went during a
 * time window: top self-time functions, self time per package (node_modules package, node:
 * module, repo folder, GC), the same with native frames charged to their JS caller, and the
 * inclusive share of the repo's own functions. Samples outside the window (startup, shutdown)
 * are dropped; V8's profile clock and process.hrtime are both CLOCK_MONOTONIC, so the window
 * can be taken in the bench process.
 */
import fs from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  ms: number;
  /** Share of busy (non-idle) samples. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  windowMs: number;
  samples: number;
  busySamples: number;
  /** CPU ms the samples stand for (busy only). */
  busyMs: number;
  windowApplied: boolean;
  topSelf: Row[];
  selfByGroup: Row[];
  /** Self time with native/builtin frames (no script URL) charged to the nearest JS caller's group. */
  attributedByGroup: Row[];
  /** Share of busy samples with each repo function on the stack (inclusive). */
  repoInclusive: Row[];
  /** Share of busy samples with each group anywhere on the stack. */
  onStackByGroup: Row[];
  /** Native/builtin leaf frames (syscalls, JSON, hashing...) by the library frame and the repo frame that led to them. */
  nativeByOrigin: Row[];
}

/** express 5 and the packages it pulls in on a request (router, body parsing, finalhandler...). */
const EXPRESS_FAMILY = new Set([
  'express',
  'router',
  'path-to-regexp',
  'parseurl',
  'finalhandler',
  'on-finished',
  'body-parser',
  'raw-body',
  'type-is',
  'content-type',
  'media-typer',
  'qs',
  'side-channel',
  'depd',
  'debug',
  'accepts',
  'negotiator',
  'mime-types',
  'etag',
  'fresh',
  'send',
  'statuses',
  'encodeurl',
  'escape-html',
  'merge-descriptors',
  'setprototypeof',
  'http-errors',
  'iconv-lite',
  'unpipe',
  'ee-first',
  'forwarded',
  'proxy-addr',
  'vary',
  'cookie',
  'range-parser',
  'is-promise',
  'once',
  'wrappy',
  'bytes',
]);

function packageOf(url: string): string | null {
  const i = url.lastIndexOf('/node_modules/');
  if (i < 0) return null;
  const rest = url.slice(i + '/node_modules/'.length).split('/');
  return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
}

/**
 * tsx serves repo modules with whitespace minified (every frame reports line 1), so a repo
 * function's line is looked up in its source by name (the first declaration-looking line).
 */
const sourceLines = new Map<string, string[] | null>();
function repoLine(file: string, name: string): number | null {
  if (name === '' || name === '(anonymous)') return null;
  if (!sourceLines.has(file)) {
    try {
      sourceLines.set(file, fs.readFileSync(file, 'utf8').split('\n'));
    } catch {
      sourceLines.set(file, null);
    }
  }
  const lines = sourceLines.get(file);
  if (!lines) return null;
  const bare = name.split('.').pop() as string;
  const esc = bare.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const patterns = [new RegExp(`function\\s+${esc}\\b`), new RegExp(`(const|let)\\s+${esc}\\s*=`), new RegExp(`^\\s*(async\\s+|private\\s+|static\\s+|get\\s+)*${esc}\\s*[<(]`)];
  for (const re of patterns) {
    const i = lines.findIndex((l) => re.test(l));
    if (i >= 0) return i + 1;
  }
  return null;
}

function shortUrl(url: string, repoRoot: string): string {
  if (url === '') return '';
  const i = url.lastIndexOf('/node_modules/');
  if (i >= 0) return url.slice(i + '/node_modules/'.length);
  const local = url.startsWith('file://') ? url.slice('file://'.length) : url;
  if (local.startsWith(`${repoRoot}/`)) return path.relative(repoRoot, local);
  return url;
}

/** The group a frame belongs to, or null for a native/builtin frame without a script. */
function groupOf(f: CallFrame, repoRoot: string): string | null {
  const { url, functionName } = f;
  if (url === '') {
    if (functionName === '(garbage collector)') return '(garbage collector)';
    if (functionName === '(program)') return '(program: V8/native, no JS frame)';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(root)') return '(root)';
    return null;
  }
  const pkg = packageOf(url);
  if (pkg !== null) return EXPRESS_FAMILY.has(pkg) ? `express 5 + deps (${pkg})` : pkg;
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    return `node:${parts[0] === 'internal' && parts.length > 1 ? `internal/${parts[1].replace(/\.js$/, '')}` : parts[0]}`;
  }
  const local = url.startsWith('file://') ? url.slice('file://'.length) : url;
  if (local.startsWith(`${repoRoot}/`)) {
    const rel = path.relative(repoRoot, local);
    return rel.split('/').slice(0, 2).join('/'); // gateway/src, lib/src, ...
  }
  return url;
}

/** Folds the per-package express groups into one row for the summary tables. */
function familyName(group: string): string {
  return group.startsWith('express 5 + deps') ? 'express 5 + deps (router, finalhandler, ...)' : group;
}

function rows(counts: Map<string, number>, msPerSample: number, busy: number, limit: number): Row[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, n]) => ({ name, ms: n * msPerSample, share: n / busy }));
}

export function analyseProfile(file: string, repoRoot: string, window: { fromUs: number; toUs: number } | null, topN = 25): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Sample times (µs, CLOCK_MONOTONIC).
  let t = prof.startTime;
  const inWindow: boolean[] = [];
  let windowApplied = window !== null && window.fromUs < prof.endTime && window.toUs > prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    inWindow.push(!windowApplied || (window !== null && t >= window.fromUs && t < window.toUs));
  }
  if (windowApplied && !inWindow.some(Boolean)) {
    windowApplied = false;
    inWindow.fill(true);
  }
  const fromUs = windowApplied && window !== null ? window.fromUs : prof.startTime;
  const toUs = windowApplied && window !== null ? window.toUs : prof.endTime;

  // Per node: its group, its attributed group (nearest JS frame), groups and repo functions on its path.
  const groupMemo = new Map<number, string | null>();
  const attributedMemo = new Map<number, string>();
  const stackGroups = new Map<number, Set<string>>();
  const stackRepoFns = new Map<number, Set<string>>();
  const group = (id: number): string | null => {
    if (!groupMemo.has(id)) groupMemo.set(id, groupOf((byId.get(id) as ProfileNode).callFrame, repoRoot));
    return groupMemo.get(id) ?? null;
  };
  const attributed = (id: number): string => {
    const memo = attributedMemo.get(id);
    if (memo !== undefined) return memo;
    const g = group(id);
    const p = parent.get(id);
    const a = g !== null ? g : p === undefined ? '(native, no JS caller)' : attributed(p);
    attributedMemo.set(id, a);
    return a;
  };
  const fnKey = (f: CallFrame) => {
    const name = f.functionName || '(anonymous)';
    const short = shortUrl(f.url, repoRoot);
    if (f.lineNumber === 0 && f.url.startsWith(`file://${repoRoot}/`) && f.url.endsWith('.ts')) {
      const line = repoLine(f.url.slice('file://'.length), f.functionName);
      return `${name}  ${short}${line === null ? '' : `:~${line}`}`;
    }
    return `${name}  ${short}:${f.lineNumber + 1}`;
  };
  /** For a native leaf: the nearest library/repo frame and the nearest repo frame above it. */
  const originMemo = new Map<number, string>();
  const origin = (id: number): string => {
    const memo = originMemo.get(id);
    if (memo !== undefined) return memo;
    let lib: string | null = null;
    let repo: string | null = null;
    for (let p = parent.get(id); p !== undefined && repo === null; p = parent.get(p)) {
      const f = (byId.get(p) as ProfileNode).callFrame;
      if (f.url === '' || f.url.startsWith('node:')) continue;
      const g = group(p);
      const isRepo = g !== null && (g.startsWith('gateway/') || g.startsWith('lib/'));
      if (isRepo) repo = fnKey(f);
      else lib ??= fnKey(f);
    }
    const leaf = (byId.get(id) as ProfileNode).callFrame.functionName || '(anonymous native)';
    const o = [leaf, lib, repo].filter((x) => x !== null).join('  <-  ');
    originMemo.set(id, o);
    return o;
  };
  const pathSets = (id: number): { groups: Set<string>; repo: Set<string> } => {
    const known = stackGroups.get(id);
    if (known !== undefined) return { groups: known, repo: stackRepoFns.get(id) as Set<string> };
    const p = parent.get(id);
    const up = p === undefined ? { groups: new Set<string>(), repo: new Set<string>() } : pathSets(p);
    const g = group(id);
    const f = (byId.get(id) as ProfileNode).callFrame;
    const isRepo = g !== null && (g.startsWith('gateway/') || g.startsWith('lib/'));
    const groups = g !== null && g !== '(root)' && !up.groups.has(familyName(g)) ? new Set([...up.groups, familyName(g)]) : up.groups;
    const repo = isRepo && !up.repo.has(fnKey(f)) ? new Set([...up.repo, fnKey(f)]) : up.repo;
    stackGroups.set(id, groups);
    stackRepoFns.set(id, repo);
    return { groups, repo };
  };

  const self = new Map<string, number>();
  const selfGroup = new Map<string, number>();
  const attrGroup = new Map<string, number>();
  const onStack = new Map<string, number>();
  const repoIncl = new Map<string, number>();
  const nativeOrigin = new Map<string, number>();
  let samples = 0;
  let busy = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    if (!inWindow[i]) continue;
    samples++;
    const id = prof.samples[i];
    const f = (byId.get(id) as ProfileNode).callFrame;
    if (f.functionName === '(idle)') continue;
    busy++;
    const g = group(id);
    const key = fnKey(f);
    self.set(key, (self.get(key) ?? 0) + 1);
    const sg = g === null ? '(native/builtin frames)' : g;
    selfGroup.set(sg, (selfGroup.get(sg) ?? 0) + 1);
    const ag = attributed(id);
    attrGroup.set(ag, (attrGroup.get(ag) ?? 0) + 1);
    if (g === null && f.functionName !== '(garbage collector)' && f.functionName !== '(program)') {
      const o = origin(id);
      nativeOrigin.set(o, (nativeOrigin.get(o) ?? 0) + 1);
    }
    const sets = pathSets(id);
    for (const s of sets.groups) onStack.set(s, (onStack.get(s) ?? 0) + 1);
    for (const s of sets.repo) repoIncl.set(s, (repoIncl.get(s) ?? 0) + 1);
  }
  const windowMs = (toUs - fromUs) / 1000;
  const msPerSample = samples > 0 ? windowMs / samples : 0;
  const b = Math.max(1, busy);
  return {
    file,
    windowMs,
    samples,
    busySamples: busy,
    busyMs: busy * msPerSample,
    windowApplied,
    topSelf: rows(self, msPerSample, b, topN),
    selfByGroup: rows(selfGroup, msPerSample, b, 20),
    attributedByGroup: rows(attrGroup, msPerSample, b, 20),
    repoInclusive: rows(repoIncl, msPerSample, b, 20),
    onStackByGroup: rows(onStack, msPerSample, b, 20),
    nativeByOrigin: rows(nativeOrigin, msPerSample, b, 15),
  };
}
