/**
 * A hand-written check of the common order body, in front of orderRequestSchema (zod) on the hot
 * path. It accepts only bodies the schema accepts and returns what the schema would return (the
 * same keys, in the schema's order); anything else, e.g. a bad field, an unknown key or a
 * metadata object, returns null and goes through the schema, which then gives the error (naming
 * every bad field) or the parsed order. So the answers are the schema's, only cheaper to reach.
 * gateway/test/order-check.test.ts holds the two to that.
 */
import { SKU_PATTERN, type OrderRequest } from '../../lib/src/order.ts';

const CURRENCY = /^[A-Z]{3}$/;

function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/** The order when `value` is certainly valid (no metadata), else null (ask the schema). */
export function checkOrder(value: unknown): OrderRequest | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const o = value as Record<string, unknown>;
  let n = 0;
  // for...in also sees inherited enumerable keys, as the schema's unknown-key check does.
  for (const k in o) {
    if (k !== 'sku' && k !== 'userId' && k !== 'quantity' && k !== 'priceCents' && k !== 'currency') return null;
    n++;
  }
  const { sku, userId, quantity, priceCents, currency } = o;
  if (typeof sku !== 'string' || !SKU_PATTERN.test(sku)) return null;
  if (typeof userId !== 'string' || userId.length < 1 || userId.length > 128) return null;
  if (!intIn(quantity, 1, 1000) || !intIn(priceCents, 0, 1_000_000_000)) return null;
  if (n === 4) return { sku, userId, quantity, priceCents };
  if (n !== 5 || typeof currency !== 'string' || !CURRENCY.test(currency)) return null;
  return { sku, userId, quantity, priceCents, currency };
}
