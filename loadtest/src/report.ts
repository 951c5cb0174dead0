/**
 * The run report: one self-contained HTML file (inline SVG charts and a few lines of inline
 * script for hover read-outs; no external resources) with the charts over time — arrivals,
 * accepted and rejected by reason, intake p50/p99, backlog and drain ETA, delivery rate against
 * the limit — the summary table, the thresholds and the verifier's verdict.
 */
import type { Timeline, TimelinePoint } from './recorder.ts';
import type { SummaryData } from './summary.ts';
import type { ThresholdResult } from './thresholds.ts';
import type { Verdict } from './verify.ts';

export interface ReportInput {
  scenario: string;
  startedAt: string;
  target: string;
  timeline: Timeline;
  summary: SummaryData;
  thresholds: readonly ThresholdResult[];
  verdict: Verdict | null;
  exitCode: number;
  notes: string[];
}

interface Series {
  name: string;
  color: string;
  values: (number | null)[];
  dashed?: boolean;
}

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569'];

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmtNum(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

const W = 920;
const H = 230;
const M = { l: 56, r: 16, t: 14, b: 30 };

function chart(id: string, title: string, unit: string, t: readonly number[], series: readonly Series[], loadEndS: number, shade?: readonly boolean[]): string {
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const tMax = Math.max(1, t[t.length - 1] ?? 1);
  let vMax = 0;
  for (const s of series) for (const v of s.values) if (v !== null && Number.isFinite(v)) vMax = Math.max(vMax, v);
  const yMax = niceMax(vMax * 1.05);
  const x = (ti: number) => M.l + (ti / tMax) * pw;
  const y = (v: number) => M.t + ph - (Math.min(v, yMax) / yMax) * ph;
  const parts: string[] = [];
  parts.push(`<svg class="chart" id="${id}" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(title)}" data-tmax="${tMax}">`);
  if (shade) {
    for (let i = 0; i < shade.length; i++) {
      if (!shade[i]) continue;
      let j = i;
      while (j + 1 < shade.length && shade[j + 1]) j++;
      parts.push(`<rect class="shade" x="${x(t[i]).toFixed(1)}" y="${M.t}" width="${Math.max(1, x(t[j] + 1) - x(t[i])).toFixed(1)}" height="${ph}" fill="#fee2e2"><title>gateway shedding (503 BACKLOG_FULL)</title></rect>`);
      i = j;
    }
  }
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${M.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" class="tick">${fmtNum(v)}</text>`);
  }
  const step = niceMax(tMax / 8);
  for (let s = 0; s <= tMax; s += step) {
    parts.push(`<line x1="${x(s).toFixed(1)}" x2="${x(s).toFixed(1)}" y1="${M.t + ph}" y2="${M.t + ph + 4}" stroke="#9ca3af"/>`);
    parts.push(`<text x="${x(s).toFixed(1)}" y="${H - 10}" text-anchor="middle" class="tick">${fmtNum(s)}s</text>`);
  }
  parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${M.t + ph}" y2="${M.t + ph}" stroke="#9ca3af"/>`);
  parts.push(`<text x="12" y="${M.t + ph / 2}" transform="rotate(-90 12 ${M.t + ph / 2})" text-anchor="middle" class="tick">${esc(unit)}</text>`);
  if (loadEndS > 0 && loadEndS < tMax) {
    parts.push(`<line class="load-end" x1="${x(loadEndS).toFixed(1)}" x2="${x(loadEndS).toFixed(1)}" y1="${M.t}" y2="${M.t + ph}" stroke="#6b7280" stroke-dasharray="4 3"><title>load ends; the drain continues</title></line>`);
  }
  for (const s of series) {
    let d = '';
    let pen = false;
    let points = 0;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(t[i]).toFixed(1)} ${y(v).toFixed(1)}`;
      pen = true;
      points++;
    });
    if (points > 0) parts.push(`<path class="series" data-series="${esc(s.name)}" data-points="${points}" d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
  }
  parts.push(`<line class="cursor" x1="0" x2="0" y1="${M.t}" y2="${M.t + ph}" stroke="#111827" stroke-width="0.8" visibility="hidden"/>`);
  parts.push('</svg>');
  const legend = series.map((s) => `<span class="key"><i style="background:${s.color}"></i>${esc(s.name)}</span>`).join(' ');
  return `<section class="panel"><h3>${esc(title)}</h3><div class="legend">${legend}</div>${parts.join('')}<div class="readout" data-for="${id}"></div></section>`;
}

function fmtMetric(v: number, contains: string): string {
  if (contains === 'time') return `${v.toFixed(v >= 100 ? 0 : 1)} ms`;
  if (contains === 'data') return `${(v / 1e6).toFixed(2)} MB`;
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

function summaryTable(summary: SummaryData): string {
  const rows = Object.entries(summary.metrics)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, m]) => {
      const vals = Object.entries(m.values)
        .map(([k, v]) => `${esc(k)}=${esc(m.type === 'rate' && k === 'rate' ? `${(v * 100).toFixed(2)}%` : fmtMetric(v, k === 'count' || k === 'rate' || k === 'passes' || k === 'fails' ? 'default' : m.contains))}`)
        .join(' &nbsp; ');
      const th = m.thresholds
        ? Object.entries(m.thresholds)
            .map(([e, r]) => `<span class="${r.ok ? 'ok' : 'bad'}">${r.ok ? '✓' : '✗'} ${esc(e)}</span>`)
            .join(' ')
        : '';
      return `<tr><td><code>${esc(name)}</code></td><td>${esc(m.type)}</td><td>${vals}</td><td>${th}</td></tr>`;
    })
    .join('');
  return `<table class="summary"><thead><tr><th>metric</th><th>type</th><th>values</th><th>thresholds</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function verdictBlock(v: Verdict | null): string {
  if (v === null) return '<p class="muted">The verifier did not run.</p>';
  const rows = v.checks.map((c) => `<tr><td class="${c.ok ? 'ok' : 'bad'}">${c.ok ? '✓' : '✗'}</td><td>${esc(c.name)}</td><td>${esc(c.detail)}</td></tr>`).join('');
  const n = v.numbers;
  const facts = [
    ['accepted (202)', n.accepted],
    ['delivered', n.delivered],
    ['dead-lettered', n.deadLettered],
    ['still buffered', n.buffered],
    ['lost', n.lost],
    ['downstream received', n.ledgerReceived],
    ['redeliveries (repeated Idempotency-Key)', n.ledgerDuplicates],
    ['busiest second at the downstream', n.maxPerSecond],
    ['rate + burst', n.rateLimit ?? '—'],
    ['drainer group lag', n.brokerLag ?? '—'],
  ]
    .map(([k, val]) => `<tr><td>${esc(String(k))}</td><td>${esc(String(val))}</td></tr>`)
    .join('');
  return (
    `<p class="verdict ${v.ok ? 'ok' : 'bad'}" id="verdict">${v.ok ? 'PASS' : 'FAIL'} <small>drain ${v.drain.drained ? 'finished' : 'not finished'} after ${(v.drain.waitedMs / 1000).toFixed(1)} s</small></p>` +
    `<table class="checks"><tbody>${rows}</tbody></table><table class="facts"><tbody>${facts}</tbody></table>`
  );
}

const SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById('timeline-data').textContent);
  var charts = document.querySelectorAll('svg.chart');
  charts.forEach(function (svg) {
    var out = document.querySelector('.readout[data-for="' + svg.id + '"]');
    var cursor = svg.querySelector('.cursor');
    var tmax = Number(svg.getAttribute('data-tmax'));
    var fields = (data.fields[svg.id] || []);
    svg.addEventListener('mousemove', function (ev) {
      var box = svg.getBoundingClientRect();
      var vx = (ev.clientX - box.left) * (${W} / box.width);
      var t = Math.round(((vx - ${M.l}) / (${W - M.l - M.r})) * tmax);
      if (t < 0 || t > tmax) return;
      var p = data.points[t];
      if (!p) return;
      cursor.setAttribute('x1', vx); cursor.setAttribute('x2', vx); cursor.setAttribute('visibility', 'visible');
      out.textContent = 't=' + t + 's  ' + fields.map(function (f) { var v = p[f[1]]; return f[0] + ' ' + (v === null || v === undefined ? '—' : Math.round(v * 10) / 10); }).join('  ');
    });
    svg.addEventListener('mouseleave', function () { cursor.setAttribute('visibility', 'hidden'); });
  });
})();
`;

export function renderReport(r: ReportInput): string {
  const pts: readonly TimelinePoint[] = r.timeline.points;
  const t = pts.map((p) => p.t);
  const codes = r.timeline.rejectionCodes;
  const flat = pts.map((p) => {
    const o: Record<string, number | null> = {
      arrivals: p.arrivals,
      dropped: p.dropped,
      accepted: p.accepted,
      p50: p.p50,
      p99: p.p99,
      vus: p.vus,
      backlog: p.backlog,
      eta: p.etaSeconds,
      delivered: p.deliveredPerSecond,
      permitted: p.permittedRate,
    };
    for (const c of codes) o[`rej_${c}`] = p.rejected[c] ?? 0;
    return o;
  });
  const col = (k: string) => flat.map((o) => o[k] ?? null);
  const limit = r.verdict?.numbers.rateLimit ?? null;
  const charts = [
    chart(
      'chart-arrivals',
      'Arrival rate (iterations started per second)',
      'per second',
      t,
      [
        { name: 'arrivals/s', color: PALETTE[0], values: col('arrivals') },
        { name: 'dropped iterations/s', color: PALETTE[1], values: col('dropped') },
        { name: 'active VUs', color: PALETTE[8], values: col('vus'), dashed: true },
      ],
      r.timeline.loadEndS,
    ),
    chart(
      'chart-outcomes',
      'Intake: accepted and rejected by reason (per second)',
      'per second',
      t,
      [{ name: 'accepted (202)', color: PALETTE[2], values: col('accepted') }, ...codes.map((c, i) => ({ name: c, color: PALETTE[(i + 3) % PALETTE.length], values: col(`rej_${c}`) }))],
      r.timeline.loadEndS,
    ),
    chart(
      'chart-latency',
      'Intake latency (POST /v1/orders)',
      'ms',
      t,
      [
        { name: 'p50', color: PALETTE[0], values: col('p50') },
        { name: 'p99', color: PALETTE[1], values: col('p99') },
      ],
      r.timeline.loadEndS,
    ),
    chart('chart-backlog', 'Backlog (orders buffered) — shaded while the gateway sheds', 'orders', t, [{ name: 'backlog', color: PALETTE[4], values: col('backlog') }], r.timeline.loadEndS, pts.map((p) => p.shedding === true)),
    chart('chart-eta', 'Drain ETA (backlog ÷ permitted rate)', 'seconds', t, [{ name: 'ETA', color: PALETTE[3], values: col('eta') }], r.timeline.loadEndS, pts.map((p) => p.shedding === true)),
    chart(
      'chart-delivery',
      'Deliveries to the downstream against the limit',
      'per second',
      t,
      [
        { name: 'delivered/s', color: PALETTE[2], values: col('delivered') },
        { name: "drainer's permitted rate", color: PALETTE[0], values: col('permitted'), dashed: true },
        ...(limit === null ? [] : [{ name: 'rate + burst (never above)', color: PALETTE[1], values: t.map(() => limit), dashed: true }]),
      ],
      r.timeline.loadEndS,
    ),
  ];
  const fields: Record<string, [string, string][]> = {
    'chart-arrivals': [
      ['arrivals', 'arrivals'],
      ['dropped', 'dropped'],
      ['VUs', 'vus'],
    ],
    'chart-outcomes': [['accepted', 'accepted'], ...codes.map((c): [string, string] => [c, `rej_${c}`])],
    'chart-latency': [
      ['p50 ms', 'p50'],
      ['p99 ms', 'p99'],
    ],
    'chart-backlog': [['backlog', 'backlog']],
    'chart-eta': [['ETA s', 'eta']],
    'chart-delivery': [
      ['delivered/s', 'delivered'],
      ['permitted', 'permitted'],
    ],
  };
  const thresholdRows = r.thresholds
    .map((x) => `<tr><td class="${x.ok ? 'ok' : 'bad'}">${x.ok ? '✓' : '✗'}</td><td><code>${esc(x.threshold.key)}</code></td><td><code>${esc(x.threshold.source)}</code></td><td>${esc(x.actual.toFixed(3))}</td></tr>`)
    .join('');
  const json = JSON.stringify({ points: flat, fields }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spillway loadtest — ${esc(r.scenario)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;color:#111827;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:14px;margin:0 0 4px}
.muted,small{color:#6b7280}.panel{margin:14px 0 18px}.legend{font-size:12px;margin-bottom:2px}
.key{margin-right:12px;white-space:nowrap}.key i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
.tick{font-size:10px;fill:#6b7280}.readout{font:12px ui-monospace,monospace;color:#374151;min-height:16px}
table{border-collapse:collapse;width:100%;margin:8px 0}td,th{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top;font-size:13px}
.ok{color:#15803d}.bad{color:#b91c1c}.verdict{font-size:20px;font-weight:700;margin:6px 0}
code{font-size:12px}
</style></head><body>
<h1>spillway loadtest — ${esc(r.scenario)}</h1>
<p class="muted">started ${esc(r.startedAt)} · target ${esc(r.target)} · test run ${(r.summary.state.testRunDurationMs / 1000).toFixed(1)} s · exit code ${r.exitCode}</p>
${r.notes.map((n) => `<p class="muted">${esc(n)}</p>`).join('')}
<h2>Verdict</h2>
${verdictBlock(r.verdict)}
<h2>Over time</h2>
${charts.join('\n')}
<h2>Thresholds</h2>
${r.thresholds.length ? `<table class="thresholds"><thead><tr><th></th><th>metric</th><th>threshold</th><th>actual</th></tr></thead><tbody>${thresholdRows}</tbody></table>` : '<p class="muted">none</p>'}
<h2>Summary</h2>
${summaryTable(r.summary)}
<script type="application/json" id="timeline-data">${json}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
