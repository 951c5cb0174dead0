/**
 * The hot path's hand-written order check against the contract's schema (orderRequestSchema):
 * whatever it accepts, the schema accepts with the same result; the usual order bodies do take
 * the fast way. Bodies are generated around every bound and type of every field.
 */
import { describe, expect, it } from 'vitest';
import { orderRequestSchema } from '../../lib/src/order.ts';
import { checkOrder } from '../src/order-check.ts';

const valid = { sku: 'SKU-1', userId: 'u-42', quantity: 1, priceCents: 1999 };

/** Candidate values per field: valid ones, edges on both sides, wrong types. */
const candidates: Record<string, unknown[]> = {
  sku: ['SKU-1', 'a', 'A.b_c:d-9', 'x'.repeat(64), 'x'.repeat(65), '', 'bad sku', 'grüße', 'SKU/1', 1, null, true, ['SKU-1'], { s: 1 }],
  userId: ['u', 'u-42', 'x'.repeat(128), 'x'.repeat(129), '', 'grüße ✓', '\u0000', '😀'.repeat(64), '😀'.repeat(65), 42, null, false, ['u']],
  quantity: [1, 2, 999, 1000, 1001, 0, -1, -0, 1.5, 1e3, 1e21, Number.MAX_SAFE_INTEGER + 1, '1', null, true, [1]],
  priceCents: [0, -0, 1, 1999, 1_000_000_000, 1_000_000_001, -1, 0.5, 2 ** 53, '100', null, {}],
  currency: ['EUR', 'USD', 'eur', 'EU', 'EURO', '', 'E1R', 1, null],
  metadata: [{}, { a: 'b' }, { ['k'.repeat(65)]: 'v' }, { a: 'v'.repeat(513) }, { a: 1 }, 'x', null],
};

function* bodies(): Generator<unknown> {
  yield valid;
  yield { ...valid, currency: 'EUR' };
  for (const [field, values] of Object.entries(candidates)) {
    for (const v of values) yield { ...valid, [field]: v };
    const { [field]: _dropped, ...rest } = { ...valid, currency: 'EUR' } as Record<string, unknown>;
    yield rest;
  }
  // Unknown keys, prototype tricks and non-objects.
  yield { ...valid, extra: 1 };
  yield { ...valid, currency: undefined };
  yield JSON.parse(`{"sku":"S","userId":"u","quantity":1,"priceCents":1,"__proto__":{"x":1}}`);
  yield JSON.parse(`{"sku":"S","userId":"u","quantity":1,"priceCents":1,"constructor":1}`);
  yield Object.assign(Object.create({ inherited: 1 }) as object, valid);
  yield [valid];
  yield null;
  yield 'order';
  yield 42;
  yield {};
  // Pairs of fields varied together (a deterministic sample).
  let seed = 7;
  const pick = <T>(xs: T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % xs.length];
  const fields = Object.keys(candidates);
  for (let i = 0; i < 3000; i++) {
    const body: Record<string, unknown> = { ...valid };
    for (let j = 0; j < 3; j++) {
      const f = pick(fields);
      const v = pick([...candidates[f], undefined]);
      if (v === undefined) delete body[f];
      else body[f] = v;
    }
    yield body;
  }
}

describe('checkOrder', () => {
  it('accepts only what the schema accepts, with the same result (same keys, same order)', () => {
    let fast = 0;
    let schemaOnly = 0;
    let refused = 0;
    for (const body of bodies()) {
      const ours = checkOrder(body);
      const theirs = orderRequestSchema.safeParse(body);
      if (ours !== null) {
        fast++;
        expect(theirs.success, JSON.stringify(body)).toBe(true);
        expect(JSON.stringify(ours), JSON.stringify(body)).toBe(JSON.stringify(theirs.data));
      } else if (theirs.success) schemaOnly++;
      else refused++;
    }
    // The generator covers all three outcomes, so the comparison above is not vacuous.
    expect(fast).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
    expect(schemaOnly).toBeGreaterThan(0);
  });

  it('takes the fast way for the usual bodies, with and without a currency', () => {
    expect(checkOrder(JSON.parse('{"sku":"SKU-7","userId":"g123-456","quantity":1,"priceCents":1999}'))).toEqual({ sku: 'SKU-7', userId: 'g123-456', quantity: 1, priceCents: 1999 });
    expect(checkOrder({ ...valid, currency: 'EUR' })).toEqual({ ...valid, currency: 'EUR' });
    // A metadata object is left to the schema.
    expect(checkOrder({ ...valid, metadata: { a: 'b' } })).toBeNull();
  });
});
