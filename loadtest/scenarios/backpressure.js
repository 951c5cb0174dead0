// Backpressure: the downstream slows down mid-run (its capacity drops to SLOW_RATE), the drainer
// backs off, the backlog's drain ETA crosses the gateway's budget and the gateway sheds new
// orders with 503 BACKLOG_FULL (+ Retry-After); the downstream recovers, the backlog drains, and
// the gateway accepts again. The stack needs a small budget for this to show in a minute:
// SPILLWAY_BACKLOG_BUDGET_S=15, SPILLWAY_BACKLOG_RESUME_S=5 (what --up sets).
//
//   spillway loadtest backpressure --up                    (this machine: 60/s for 90 s)
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... -e DOWNSTREAM_URL=... loadtest/scenarios/backpressure.js
import http from 'k6/http';
import exec from 'k6/execution';
import { constantArrivals, DOWNSTREAM_URL, drainingStack, num, OK_2XX, placeOrder, seconds, setupSale, str, summaryHandler, teardownSale, TREND_STATS } from './lib/common.js';

const RATE = num('RATE', 60);
const DURATION = str('DURATION', '90s');
const SLOW_AT = str('SLOW_AT', '10s');
const RECOVER_AT = str('RECOVER_AT', '35s');
const SLOW_RATE = num('SLOW_RATE', 5);
const END_WINDOW_S = num('END_WINDOW_S', 10);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    intake: constantArrivals(RATE, DURATION, { pre: 20, max: 300 }),
    slowdown: { executor: 'shared-iterations', vus: 1, iterations: 1, startTime: SLOW_AT, exec: 'slowDown' },
    recovery: { executor: 'shared-iterations', vus: 1, iterations: 1, startTime: RECOVER_AT, exec: 'recover' },
  },
  thresholds: {
    orders_shed: ['count>0'], // the gateway did shed ...
    'orders_accepted{phase:end}': ['count>0'], // ... and accepts again by the end
    'orders_shed{phase:end}': ['count==0'],
    'http_req_duration{name:POST /v1/orders}': [str('P99_LIMIT', 'p(99)<1000')],
    orders_known_outcome: ['rate>0.99'], // 202, 409 or 503 BACKLOG_FULL — nothing else
    checks: ['rate>0.99'],
  },
  summaryTrendStats: TREND_STATS,
};

export const spillwayStack = {
  gateway: { env: { SPILLWAY_BACKLOG_BUDGET_S: str('BUDGET_S', '15'), SPILLWAY_BACKLOG_RESUME_S: str('RESUME_S', '5') } },
  ...drainingStack(120),
};

export function setup() {
  return setupSale({ skus: [{ sku: 'BACKPRESSURE', stock: 10000000, perUserLimit: 0 }], peakRate: RATE });
}

/** @param {import('./lib/common.js').SaleData} data */
export function teardown(data) {
  http.del(`${DOWNSTREAM_URL}/control`); // back to the simulator's startup settings, whatever happened
  teardownSale(data);
}

/** @param {import('./lib/common.js').SaleData} data */
export default async function (data) {
  const i = exec.scenario.iterationInTest;
  const elapsed = (Date.now() - data.startedAt) / 1000;
  const phase = elapsed < seconds(SLOW_AT) ? 'before' : elapsed < seconds(RECOVER_AT) ? 'slow' : elapsed < seconds(DURATION) - END_WINDOW_S ? 'recovering' : 'end';
  await placeOrder(data, { sku: data.skus[0].sku, userId: `u-${i}`, idempotencyKey: `${data.runId}-${i}` }, [503], { phase });
}

/** The downstream slows down. */
export async function slowDown() {
  const r = await http.asyncRequest('PUT', `${DOWNSTREAM_URL}/control`, JSON.stringify({ rate: SLOW_RATE, burst: 2 }), { headers: { 'Content-Type': 'application/json' }, tags: { name: 'control' }, responseCallback: OK_2XX });
  if (r.status !== 200) throw new Error(`slowing the downstream failed: ${r.status} ${r.body}`);
}

/** The downstream recovers (back to its startup capacity). */
export async function recover() {
  const r = await http.asyncRequest('DELETE', `${DOWNSTREAM_URL}/control`, null, { tags: { name: 'control' }, responseCallback: OK_2XX });
  if (r.status !== 200) throw new Error(`restoring the downstream failed: ${r.status} ${r.body}`);
}

export const handleSummary = summaryHandler('backpressure');
