// Shared by the flash-sale scenarios. Plain k6 script API: runs in real k6 and in
// `spillway loadtest` (which provides k6/http, k6, k6/metrics and k6/execution through a shim).
//
// Parameters come from __ENV (k6 -e NAME=value, or the environment):
//   BASE_URL        gateway, default http://127.0.0.1:8080
//   ADMIN_TOKEN     admin bearer token (SKUs and API keys are loaded through the admin API)
//   DOWNSTREAM_URL  the downstream simulator (backpressure scenario), default http://127.0.0.1:8090
//   RUN_ID          suffix of this run's SKU and API-key names (default: a timestamp)
//   CLIENTS         API keys to spread the load over (the gateway rate-limits each client,
//                   50/s by default); default: one per 10/s of the scenario's peak; 0 = none
//   SUMMARY_DIR     where handleSummary writes <scenario>-summary.json (default .)
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || __ENV.SPILLWAY_ADMIN_TOKEN || '';
export const DOWNSTREAM_URL = (__ENV.DOWNSTREAM_URL || 'http://127.0.0.1:8090').replace(/\/$/, '');

/**
 * A number from __ENV, or the default.
 * @param {string} name
 * @param {number} def
 * @returns {number}
 */
export function num(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
  return n;
}

/**
 * A string (e.g. a duration like "30s") from __ENV, or the default.
 * @param {string} name
 * @param {string} def
 * @returns {string}
 */
export function str(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : v;
}

/** Seconds in a k6 duration string ("1m30s", "45s", "500ms"). @param {string} d @returns {number} */
export function seconds(d) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m;
  while ((m = re.exec(d)) !== null) total += Number(m[1]) * ({ ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]] || 0);
  return total;
}

// Custom metrics: what a shop cares about, tagged with the gateway's answer.
export const ordersAccepted = new Counter('orders_accepted');
export const ordersRejected = new Counter('orders_rejected');
export const ordersShed = new Counter('orders_shed');
export const ordersSoldOut = new Counter('orders_sold_out');
export const intakeDuration = new Trend('order_intake_duration', true);
export const knownOutcome = new Rate('orders_known_outcome');

/** Outcomes a flash sale expects (http_req_failed counts the rest). */
export const SALE_STATUSES = http.expectedStatuses(202, 409);

/** Admin and control calls: any 2xx is fine. */
export const OK_2XX = http.expectedStatuses({ min: 200, max: 299 });

const adminParams = () => ({ headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' }, tags: { name: 'admin' }, responseCallback: OK_2XX });

/**
 * @typedef {{ sku: string, stock: number, perUserLimit: number }} SkuLoad
 * @typedef {{ runId: string, skus: SkuLoad[], apiKeys: string[], keyNames: string[], startedAt: number }} SaleData
 */

/**
 * Loads this run's SKUs (names suffixed with the run id) and creates API keys for the load.
 * @param {{ skus: SkuLoad[], peakRate: number }} sale
 * @returns {SaleData}
 */
export function setupSale(sale) {
  if (ADMIN_TOKEN === '') fail('ADMIN_TOKEN is required: the scenario loads its SKUs through the admin API');
  const runId = __ENV.RUN_ID || Date.now().toString(36);
  const skus = sale.skus.map((s) => ({ ...s, sku: `${s.sku}-${runId}` }));
  const loaded = http.put(`${BASE_URL}/v1/admin/skus`, JSON.stringify({ skus }), adminParams());
  if (!check(loaded, { 'SKUs loaded': (r) => r.status === 200 })) fail(`loading SKUs failed: ${loaded.status} ${loaded.body}`);
  const clients = num('CLIENTS', Math.max(1, Math.ceil(sale.peakRate / 10)));
  /** @type {string[]} */ const apiKeys = [];
  /** @type {string[]} */ const keyNames = [];
  for (let i = 0; i < clients; i++) {
    const name = `loadtest-${runId}-${i}`;
    const r = http.post(`${BASE_URL}/v1/admin/api-keys`, JSON.stringify({ name }), adminParams());
    if (r.status !== 201) fail(`creating API key ${name} failed: ${r.status} ${r.body}`);
    apiKeys.push(String(r.json('apiKey')));
    keyNames.push(name);
  }
  // Other gateways pick new keys up on a miss after 1 s.
  if (clients > 0) sleep(1.2);
  return { runId, skus, apiKeys, keyNames, startedAt: Date.now() };
}

/** Revokes the run's API keys. @param {SaleData} data */
export function teardownSale(data) {
  for (const name of data.keyNames) http.del(`${BASE_URL}/v1/admin/api-keys/${name}`, null, adminParams());
}

/**
 * Places one order. `idempotencyKey` makes a retry safe; `metadata` is passed through to the
 * downstream (`{simulate: "422"}` makes the simulator refuse it, so it is dead-lettered).
 * @param {SaleData} data
 * @param {{ sku: string, userId: string, quantity?: number, priceCents?: number, idempotencyKey: string, metadata?: Record<string, string> }} o
 * @param {number[]} [alsoExpected] statuses that are an expected outcome in this scenario besides 202 and 409
 * @param {Record<string, string>} [extraTags] added to the custom metrics' samples (e.g. a phase)
 * @returns {Promise<{ status: number, code: string }>}
 */
export async function placeOrder(data, o, alsoExpected = [], extraTags = {}) {
  /** @type {Record<string, string>} */
  const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': o.idempotencyKey };
  if (data.apiKeys.length > 0) headers['X-API-Key'] = data.apiKeys[exec.scenario.iterationInTest % data.apiKeys.length];
  const body = JSON.stringify({ sku: o.sku, userId: o.userId, quantity: o.quantity || 1, priceCents: o.priceCents || 1999, ...(o.metadata ? { metadata: o.metadata } : {}) });
  const res = await http.asyncRequest('POST', `${BASE_URL}/v1/orders`, body, {
    headers,
    tags: { name: 'POST /v1/orders' },
    responseCallback: alsoExpected.length ? http.expectedStatuses(202, 409, ...alsoExpected) : SALE_STATUSES,
  });
  let code = 'NO_ANSWER';
  if (res.status === 202) code = 'ACCEPTED';
  else if (res.status !== 0) {
    try {
      const e = /** @type {{ error?: { code?: string } }} */ (res.json());
      code = (e && e.error && e.error.code) || `HTTP_${res.status}`;
    } catch (_) {
      code = `HTTP_${res.status}`;
    }
  }
  const tags = { ...extraTags, code };
  intakeDuration.add(res.timings.duration, tags);
  if (code === 'ACCEPTED') ordersAccepted.add(1, extraTags);
  else ordersRejected.add(1, tags);
  if (code === 'BACKLOG_FULL') ordersShed.add(1, extraTags);
  if (code === 'SOLD_OUT') ordersSoldOut.add(1, extraTags);
  const expected = code === 'ACCEPTED' || res.status === 409 || alsoExpected.indexOf(res.status) >= 0;
  knownOutcome.add(expected, tags);
  check(res, {
    'order answered with an expected outcome': () => expected,
    'accepted orders carry an orderId': (r) => r.status !== 202 || typeof r.json('orderId') === 'string',
  });
  return { status: res.status, code };
}

/**
 * The `handleSummary` of every scenario: a short text on stdout and k6's summary data as JSON.
 * @param {string} scenario
 */
export function summaryHandler(scenario) {
  /** @param {{ metrics: Record<string, { type: string, values: Record<string, number>, thresholds?: Record<string, { ok: boolean }> }> }} data */
  return (data) => {
    const m = data.metrics;
    /** @param {string} name @param {string} field */
    const v = (name, field) => (m[name] && m[name].values[field] !== undefined ? m[name].values[field] : 0);
    const failed = Object.entries(m)
      .filter(([, x]) => x.thresholds && Object.values(x.thresholds).some((t) => !t.ok))
      .map(([name]) => name);
    const text = [
      `${scenario}: ${v('orders_accepted', 'count')} accepted, ${v('orders_rejected', 'count')} rejected ` +
        `(${v('orders_sold_out', 'count')} sold out, ${v('orders_shed', 'count')} shed), ${v('dropped_iterations', 'count')} dropped iterations`,
      `intake p50 ${v('order_intake_duration', 'med').toFixed(1)} ms, p99 ${v('order_intake_duration', 'p(99)').toFixed(1)} ms; checks ${(v('checks', 'rate') * 100).toFixed(2)}%`,
      failed.length ? `thresholds crossed: ${failed.join(', ')}` : 'all thresholds held',
      '',
    ].join('\n');
    const dir = (__ENV.SUMMARY_DIR || '.').replace(/\/$/, '');
    return { stdout: text, [`${dir}/${scenario}-summary.json`]: JSON.stringify(data, null, 2) };
  };
}

export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

/**
 * A constant-arrival-rate scenario: `rate` iterations a second for `duration` (open model), its
 * VU pool settable with PRE_VUS / MAX_VUS.
 * @param {number} rate
 * @param {string} duration
 * @param {{ pre: number, max: number }} vus
 * @returns {import('k6/options').ConstantArrivalRateScenario}
 */
export function constantArrivals(rate, duration, vus) {
  return { executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration, preAllocatedVUs: num('PRE_VUS', vus.pre), maxVUs: num('MAX_VUS', vus.max) };
}

/**
 * What `spillway loadtest --up` runs when a scenario wants a drain that keeps up with a modest
 * intake: the drainer at DRAIN_RATE (100/s), the simulated downstream able to take a little more.
 * Real k6 ignores it. @param {number} capacity the downstream's default capacity (DOWNSTREAM_CAPACITY)
 */
export function drainingStack(capacity) {
  return { drainer: { rate: num('DRAIN_RATE', 100), burst: 10 }, downstream: { rate: num('DOWNSTREAM_CAPACITY', capacity), burst: 20 } };
}

/**
 * setup/teardown for a one-SKU sale with no per-user limit (ample stock), for the intake scenarios.
 * @param {string} sku
 * @param {number} stock
 * @param {number} peakRate
 */
export function oneSkuSale(sku, stock, peakRate) {
  return {
    setup: () => setupSale({ skus: [{ sku, stock, perUserLimit: 0 }], peakRate }),
    /** @param {SaleData} data */
    teardown: (data) => teardownSale(data),
  };
}

/**
 * The iteration of the intake scenarios: one order of the sale's first SKU per iteration, users
 * cycling over `users`, a unique Idempotency-Key per iteration.
 * @param {number} users
 */
export function orderPerIteration(users) {
  /** @param {SaleData} data */
  return async (data) => {
    const i = exec.scenario.iterationInTest;
    await placeOrder(data, { sku: data.skus[0].sku, userId: `u-${i % users}`, idempotencyKey: `${data.runId}-${i}` });
  };
}
