/**
 * The HTML report in a real browser (Debian's chromium through playwright-core): the charts
 * render with data points, the hover read-out works, the page makes no request beyond itself
 * and logs no console errors. Skipped, saying why, only when /usr/bin/chromium is missing
 * (`apt-get install -y chromium`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../lib/src/testing/processes.ts';
import type { Timeline } from '../src/recorder.ts';
import { renderReport } from '../src/report.ts';
import type { SummaryData } from '../src/summary.ts';
import type { Verdict } from '../src/verify.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) console.warn(`report browser test SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium)`);

function syntheticRun(): Parameters<typeof renderReport>[0] {
  const points: Timeline['points'] = [];
  for (let t = 0; t < 60; t++) {
    const spike = t >= 10 && t < 30;
    const shedding = t >= 20 && t < 28;
    points.push({
      t,
      arrivals: spike ? 300 : 30,
      dropped: t === 12 ? 4 : 0,
      accepted: shedding ? 0 : spike ? 280 : 30,
      rejected: { SOLD_OUT: spike ? 20 : 0, ...(shedding ? { BACKLOG_FULL: 300 } : {}) },
      p50: t < 50 ? 12 + (spike ? 20 : 0) : null,
      p99: t < 50 ? 40 + (spike ? 120 : 0) : null,
      vus: spike ? 40 : 5,
      backlog: t % 7 === 3 ? null : Math.max(0, (t - 10) * 150 - Math.max(0, t - 30) * 300),
      etaSeconds: Math.max(0, (t - 10) * 0.8),
      shedding,
      deliveredPerSecond: t === 0 ? null : 190 + (t % 3),
      permittedRate: 200,
    });
  }
  const timeline: Timeline = { loadEndS: 45, points, rejectionCodes: ['BACKLOG_FULL', 'SOLD_OUT'] };
  const summary: SummaryData = {
    root_group: { name: '', path: '', id: 'x', groups: [], checks: [{ name: 'accepted', path: '::accepted', id: '0', passes: 10, fails: 0 }] },
    options: { summaryTrendStats: ['avg', 'p(99)'], summaryTimeUnit: '', noColor: false },
    state: { isStdOutTTY: false, isStdErrTTY: false, testRunDurationMs: 45_000 },
    metrics: {
      http_req_duration: { type: 'trend', contains: 'time', values: { avg: 20, 'p(99)': 160 }, thresholds: { 'p(99)<500': { ok: true } } },
      checks: { type: 'rate', contains: 'default', values: { rate: 1, passes: 10, fails: 0 }, thresholds: { 'rate>0.99': { ok: true } } },
      dropped_iterations: { type: 'counter', contains: 'default', values: { count: 4, rate: 0.09 } },
    },
  };
  const verdict: Verdict = {
    ok: true,
    checks: [{ name: 'accepted = delivered + dead-lettered + still buffered', ok: true, detail: '7000 = 6990 delivered + 10 dead-lettered + 0 buffered' }],
    numbers: { accepted: 7000, delivered: 6990, deadLettered: 10, buffered: 0, lost: 0, notInLog: 0, ledgerReceived: 6990, ledgerDuplicates: 0, unattributedDeliveries: 0, maxPerSecond: 210, rateLimit: 220, brokerLag: 0, dlqTopicRecords: 10, skus: [] },
    drain: { drained: true, waitedMs: 12_000 },
    lostSample: [],
  };
  return { scenario: 'flash-sale <test>', startedAt: new Date(0).toISOString(), target: 'http://127.0.0.1:1', timeline, summary, thresholds: [], verdict, exitCode: 0, notes: ['synthetic'] };
}

describe.skipIf(!haveChromium)('loadtest report in chromium', () => {
  let browser: Browser;
  let file: string;

  beforeAll(async () => {
    file = path.join(tempDir('report'), 'report.html');
    fs.writeFileSync(file, renderReport(syntheticRun()));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('renders every chart with data, hover read-outs, no console errors, no external requests', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(file).href;
    await page.goto(url);

    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((svg) => ({
        id: svg.id,
        width: svg.getBoundingClientRect().width,
        series: [...svg.querySelectorAll('path.series')].map((p) => {
          const box = (p as unknown as { getBBox(): { width: number; height: number } }).getBBox();
          return { name: p.getAttribute('data-series'), points: Number(p.getAttribute('data-points')), commands: (p.getAttribute('d') ?? '').match(/[ML]/g)?.length ?? 0, w: box.width, h: box.height };
        }),
        shades: svg.querySelectorAll('rect.shade').length,
      })),
    );
    expect(charts.map((c) => c.id)).toEqual(['chart-arrivals', 'chart-outcomes', 'chart-latency', 'chart-backlog', 'chart-eta', 'chart-delivery']);
    for (const c of charts) {
      expect(c.width, c.id).toBeGreaterThan(500);
      expect(c.series.length, c.id).toBeGreaterThan(0);
      for (const s of c.series) {
        expect(s.points, `${c.id} ${s.name}`).toBeGreaterThan(1);
        expect(s.commands, `${c.id} ${s.name}`).toBe(s.points);
        expect(s.w, `${c.id} ${s.name} drawn`).toBeGreaterThan(0);
      }
    }
    const outcomes = charts.find((c) => c.id === 'chart-outcomes')!;
    expect(outcomes.series.map((s) => s.name)).toEqual(['accepted (202)', 'BACKLOG_FULL', 'SOLD_OUT']);
    expect(charts.find((c) => c.id === 'chart-backlog')!.shades).toBe(1); // the shedding period
    expect(charts.find((c) => c.id === 'chart-latency')!.series[0].points).toBe(50); // gaps where no sample
    expect(charts.find((c) => c.id === 'chart-delivery')!.series.map((s) => s.name)).toContain('rate + burst (never above)');

    // Hover read-out over the arrivals chart.
    const box = (await page.locator('#chart-arrivals').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await expect.poll(() => page.locator('.readout[data-for="chart-arrivals"]').textContent()).toMatch(/^t=\d+s {2}arrivals \d+/);

    expect(await page.locator('#verdict').textContent()).toMatch(/^PASS/);
    expect(await page.locator('table.summary tbody tr').count()).toBe(3);
    expect(await page.title()).toBe('spillway loadtest — flash-sale <test>');
    expect(problems).toEqual([]);
    expect(requests).toEqual([url]);
  });
});
