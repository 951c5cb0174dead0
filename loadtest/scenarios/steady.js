// Steady intake: a constant arrival rate with plenty of stock. The baseline every other scenario
// is compared with: intake latency, no errors, and a drain that keeps up.
//
//   spillway loadtest steady --up                          (this machine: 50/s for 60 s)
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... -e RATE=500 -e DURATION=10m loadtest/scenarios/steady.js
import { constantArrivals, drainingStack, num, oneSkuSale, orderPerIteration, str, summaryHandler, TREND_STATS } from './lib/common.js';

const RATE = num('RATE', 50);
const USERS = num('USERS', 100000);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    intake: constantArrivals(RATE, str('DURATION', '60s'), { pre: 20, max: 200 }),
  },
  thresholds: {
    'http_req_duration{name:POST /v1/orders}': [str('P99_LIMIT', 'p(99)<500')],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    dropped_iterations: [`count<${Math.max(1, Math.ceil(RATE))}`],
  },
  summaryTrendStats: TREND_STATS,
};

export const spillwayStack = drainingStack(150);

const sale = oneSkuSale('STEADY', 10000000, RATE);
export const setup = sale.setup;
export const teardown = sale.teardown;
export default orderPerIteration(USERS);

export const handleSummary = summaryHandler('steady');
