// Steady intake: a constant arrival rate with plenty of stock. The baseline every other scenario
// is compared with: intake latency, no errors, and a drain that keeps up.
//
//   spillway loadtest steady --up                          (this machine: 50/s for 60 s)
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... -e RATE=500 -e DURATION=10m loadtest/scenarios/steady.js
import exec from 'k6/execution';
import { num, placeOrder, setupSale, str, summaryHandler, teardownSale, TREND_STATS } from './lib/common.js';

const RATE = num('RATE', 50);
const USERS = num('USERS', 100000);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    intake: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: str('DURATION', '60s'),
      preAllocatedVUs: num('PRE_VUS', 20),
      maxVUs: num('MAX_VUS', 200),
    },
  },
  thresholds: {
    'http_req_duration{name:POST /v1/orders}': [str('P99_LIMIT', 'p(99)<500')],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    dropped_iterations: [`count<${Math.max(1, Math.ceil(RATE))}`],
  },
  summaryTrendStats: TREND_STATS,
};

export const spillwayStack = {
  drainer: { rate: num('DRAIN_RATE', 100), burst: 10 },
  downstream: { rate: num('DOWNSTREAM_CAPACITY', 150), burst: 20 },
};

export function setup() {
  return setupSale({ skus: [{ sku: 'STEADY', stock: 10000000, perUserLimit: 0 }], peakRate: RATE });
}

/** @param {import('./lib/common.js').SaleData} data */
export function teardown(data) {
  teardownSale(data);
}

/** @param {import('./lib/common.js').SaleData} data */
export default async function (data) {
  const i = exec.scenario.iterationInTest;
  await placeOrder(data, { sku: data.skus[0].sku, userId: `u-${i % USERS}`, idempotencyKey: `${data.runId}-${i}` });
}

export const handleSummary = summaryHandler('steady');
