// The flash-sale spike: steady intake, then the sale opens and arrivals ramp to 10× the steady
// rate for the sale's first minute, then decay back. Open model (ramping-arrival-rate): shoppers
// arrive on schedule however slow the answers get. Some shoppers press "buy" twice (same
// Idempotency-Key: the gateway must answer the same order, not take a second one); a few orders
// are refused by the downstream (metadata.simulate=422) and must end up dead-lettered.
//
//   spillway loadtest flash-sale --up                      (this machine, scaled: 15/s → 150/s)
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... -e STEADY_RATE=200 loadtest/scenarios/flash-sale.js
import exec from 'k6/execution';
import { num, placeOrder, setupSale, str, summaryHandler, teardownSale, TREND_STATS } from './lib/common.js';

const STEADY = num('STEADY_RATE', 15);
const PEAK = num('PEAK_RATE', STEADY * 10);
const USERS = num('USERS', 20000);
const DOUBLE_SUBMIT = num('DOUBLE_SUBMIT', 0.02);
const POISON = num('POISON', 0.002);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    sale: {
      executor: 'ramping-arrival-rate',
      startRate: STEADY,
      timeUnit: '1s',
      preAllocatedVUs: num('PRE_VUS', 50),
      maxVUs: num('MAX_VUS', 600),
      stages: [
        { duration: str('PRE_SALE', '15s'), target: STEADY }, // before the sale
        { duration: str('RAMP', '5s'), target: PEAK }, // the sale opens
        { duration: str('HOLD', '55s'), target: PEAK }, // ... its first minute at 10×
        { duration: str('DECAY', '30s'), target: STEADY }, // interest decays
        { duration: str('TAIL', '10s'), target: STEADY },
      ],
      gracefulStop: '30s',
    },
  },
  thresholds: {
    'http_req_duration{name:POST /v1/orders}': [str('P99_LIMIT', 'p(99)<1000')],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    orders_known_outcome: ['rate>0.99'],
    orders_accepted: ['count>0'],
  },
  summaryTrendStats: TREND_STATS,
};

/** Settings `spillway loadtest --up` gives the private stack (real k6 ignores this export). */
export const spillwayStack = {
  drainer: { rate: num('DRAIN_RATE', 100), burst: 10 },
  downstream: { rate: num('DOWNSTREAM_CAPACITY', 120), burst: 20 },
};

const SKUS = [
  { sku: 'PHONE', stock: num('PHONE_STOCK', 4000), perUserLimit: 2 },
  { sku: 'CONSOLE', stock: num('CONSOLE_STOCK', 1500), perUserLimit: 1 },
  { sku: 'SNEAKER', stock: num('SNEAKER_STOCK', 50000), perUserLimit: 4 },
];

export function setup() {
  return setupSale({ skus: SKUS, peakRate: PEAK * (1 + DOUBLE_SUBMIT) });
}

/** @param {import('./lib/common.js').SaleData} data */
export function teardown(data) {
  teardownSale(data);
}

/** @param {import('./lib/common.js').SaleData} data */
export default async function (data) {
  const i = exec.scenario.iterationInTest;
  const pick = i % 10; // 50 % phones, 20 % consoles, 30 % sneakers
  const sku = data.skus[pick < 5 ? 0 : pick < 7 ? 1 : 2].sku;
  const order = {
    sku,
    userId: `u-${Math.floor(Math.random() * USERS)}`,
    priceCents: pick < 5 ? 79900 : pick < 7 ? 49900 : 12900,
    idempotencyKey: `${data.runId}-${i}`,
    ...(Math.random() < POISON ? { metadata: { simulate: '422' } } : {}),
  };
  const first = await placeOrder(data, order);
  // The double click: the same Idempotency-Key and body again — the same answer, no second order.
  if (first.status !== 0 && Math.random() < DOUBLE_SUBMIT) await placeOrder(data, order);
}

export const handleSummary = summaryHandler('flash-sale');
