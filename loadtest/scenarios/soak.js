// Soak: a moderate constant rate for a long time. Latency must not creep, nothing may fail, and
// the backlog must stay near zero (the drain keeps up); a monitor samples the gateway's backlog
// view into custom metrics every 5 s.
//
//   spillway loadtest soak --up                            (this machine: 40/s for 10 min)
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... -e RATE=300 -e DURATION=4h loadtest/scenarios/soak.js
import http from 'k6/http';
import { Gauge, Trend } from 'k6/metrics';
import { ADMIN_TOKEN, BASE_URL, constantArrivals, drainingStack, num, OK_2XX, oneSkuSale, orderPerIteration, str, summaryHandler, TREND_STATS } from './lib/common.js';

const RATE = num('RATE', 40);
const DURATION = str('DURATION', '10m');
const USERS = num('USERS', 100000);

const backlogEta = new Trend('backlog_eta_seconds');
const backlogOrders = new Gauge('backlog_orders');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    intake: constantArrivals(RATE, DURATION, { pre: 20, max: 200 }),
    monitor: { executor: 'constant-arrival-rate', exec: 'monitor', rate: 1, timeUnit: '5s', duration: DURATION, preAllocatedVUs: 1, maxVUs: 2 },
  },
  thresholds: {
    'http_req_duration{name:POST /v1/orders}': [str('P99_LIMIT', 'p(99)<500')],
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    backlog_eta_seconds: ['p(95)<30'], // the drain keeps up
    dropped_iterations: [`count<${Math.max(1, Math.ceil(RATE))}`],
  },
  summaryTrendStats: TREND_STATS,
};

export const spillwayStack = drainingStack(150);

const sale = oneSkuSale('SOAK', 100000000, RATE);
export const setup = sale.setup;
export const teardown = sale.teardown;
export default orderPerIteration(USERS);

export async function monitor() {
  const r = await http.asyncRequest('GET', `${BASE_URL}/v1/admin/backlog`, null, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` }, tags: { name: 'GET /v1/admin/backlog' }, responseCallback: OK_2XX });
  if (r.status !== 200) return;
  const b = /** @type {{ backlog: number, etaSeconds: number }} */ (r.json());
  backlogEta.add(b.etaSeconds);
  backlogOrders.add(b.backlog);
}

export const handleSummary = summaryHandler('soak');
