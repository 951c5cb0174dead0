// The sold-out storm: one drop with stock far below demand. Every unit is sold exactly once;
// everyone else gets a fast 409 SOLD_OUT. Thresholds hold the shop to "never oversold" and to
// fast rejections.
//
//   spillway loadtest sold-out --up                        (this machine: 100/s for 20 s, 300 units)
//   spillway loadtest sold-out --up -e RATE=1000 -e DURATION=50s -e STOCK=1000 -e USERS=20000
//                                                          (the acceptance storm: 50,000 attempts, 20,000 users)
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... -e RATE=3000 -e STOCK=5000 loadtest/scenarios/sold-out.js
import exec from 'k6/execution';
import { constantArrivals, num, placeOrder, setupSale, str, summaryHandler, teardownSale, TREND_STATS } from './lib/common.js';

const RATE = num('RATE', 100);
const STOCK = num('STOCK', 300);
const USERS = num('USERS', 0); // 0: every attempt from a new user; N: attempts cycle over N users (a user retries)

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    storm: constantArrivals(RATE, str('DURATION', '20s'), { pre: 50, max: 400 }),
  },
  thresholds: {
    orders_accepted: [`count<=${STOCK}`, `count>=${STOCK}`], // exactly the stock: never more, and every unit sold
    orders_sold_out: ['count>0'], // demand did exceed it
    'order_intake_duration{code:SOLD_OUT}': [str('SOLD_OUT_P99_LIMIT', 'p(99)<500')], // rejections stay fast
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: TREND_STATS,
};

export const spillwayStack = {
  drainer: { rate: 100, burst: 10 },
  downstream: { rate: 150, burst: 20 },
};

export function setup() {
  return setupSale({ skus: [{ sku: 'DROP', stock: STOCK, perUserLimit: 1 }], peakRate: RATE });
}

/** @param {import('./lib/common.js').SaleData} data */
export function teardown(data) {
  teardownSale(data);
}

/** @param {import('./lib/common.js').SaleData} data */
export default async function (data) {
  const i = exec.scenario.iterationInTest;
  await placeOrder(data, { sku: data.skus[0].sku, userId: `fan-${USERS > 0 ? i % USERS : i}`, priceCents: 24900, idempotencyKey: `${data.runId}-${i}` });
}

export const handleSummary = summaryHandler('sold-out');
