/** k6 duration strings (`90s`, `1m30s`, `500ms`, `2h`) and plain numbers (ms, as k6 reads them). */
export function parseDuration(v: unknown, what = 'duration'): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v !== 'string' || v.trim() === '') throw new Error(`${what}: expected a duration like "30s" or "1m30s", got ${JSON.stringify(v)}`);
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|s|m|h)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    const unit = m[2];
    total += unit === 'h' ? n * 3_600_000 : unit === 'm' ? n * 60_000 : unit === 's' ? n * 1000 : unit === 'ms' ? n : n / 1000;
    consumed = re.lastIndex;
  }
  if (consumed !== s.length) throw new Error(`${what}: expected a duration like "30s" or "1m30s", got ${JSON.stringify(v)}`);
  return total;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
