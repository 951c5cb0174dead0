import { describe, expect, it } from 'vitest';
import { RECORD_BYTES, ReadBackCheck, recordIndex, recordStampUs, stampedPayload, writeStampedRecord } from '../lib/records.ts';

describe('bench records', () => {
  it('stamped records carry their index and their own stamp, also when stamps repeat or change', () => {
    const stamps = [1_765_000_000_123_456, 1_765_000_000_123_456, 1_765_000_000_999_999, 42, 1_765_000_000_123_456];
    const buf = Buffer.alloc(stamps.length * RECORD_BYTES);
    stamps.forEach((s, i) => writeStampedRecord(buf, i * RECORD_BYTES, 9_999_990 + i, s));
    stamps.forEach((s, i) => {
      expect(recordIndex(buf, i * RECORD_BYTES)).toBe(9_999_990 + i);
      expect(recordStampUs(buf, i * RECORD_BYTES)).toBe(s);
    });
  });

  it('a stamped payload is a well-formed record for the read-back check', () => {
    const check = new ReadBackCheck(3);
    for (const i of [0, 2, 1, 2]) check.add(stampedPayload(i, 1_765_000_000_000_000 + i), 0, RECORD_BYTES);
    expect(check.summary()).toMatchObject({ records: 4, missing: 0, duplicates: 1, foreign: 0, wrongSize: 0, ok: false });
    expect(stampedPayload(7, 5).subarray(0, 29).toString('latin1')).toBe('r0000000007-0000000000000005-');
  });
});
