/**
 * Codec tests for SaslHandshake v0-v1 and SaslAuthenticate v0-v1: requests as kafkajs 2.2.4
 * encodes them (plus captured bytes), responses decoded by kafkajs's own response modules.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Reader } from '../../src/protocol/reader.ts';
import { Writer } from '../../src/protocol/writer.ts';
import { decodeSaslAuthenticateRequest, encodeSaslAuthenticateResponse } from '../../src/protocol/apis/sasl-authenticate.ts';
import { decodeSaslHandshakeRequest, encodeSaslHandshakeResponse } from '../../src/protocol/apis/sasl-handshake.ts';

const require = createRequire(import.meta.url);
type Decoded = Record<string, unknown>;
interface KafkajsResponse {
  decode(body: Buffer): Promise<Decoded>;
  parse(decoded: Decoded): Promise<Decoded>;
}
const request = (api: string, v: number) =>
  require(`kafkajs/src/protocol/requests/${api}/v${v}/request.js`) as (a: Record<string, unknown>) => { apiKey: number; apiVersion: number; encode(): Promise<{ buffer: Buffer } | Buffer> };
const response = (api: string, v: number) => require(`kafkajs/src/protocol/requests/${api}/v${v}/response.js`) as KafkajsResponse;
const plainToken = require('kafkajs/src/protocol/sasl/plain/request.js') as (a: { username: string; password: string }) => { encode(): Promise<Buffer> };

async function body(req: { encode(): Promise<{ buffer: Buffer } | Buffer> }): Promise<Buffer> {
  const e = await req.encode();
  return Buffer.isBuffer(e) ? e : e.buffer;
}

function encoded(fn: (w: Writer) => void): Buffer {
  const w = new Writer(8);
  fn(w);
  return Buffer.concat(w.finish());
}

describe('SaslHandshake codec', () => {
  for (const v of [0, 1]) {
    it(`v${v}: decodes kafkajs's request; kafkajs decodes our response`, async () => {
      const req = request('saslHandshake', v)({ mechanism: 'PLAIN' });
      expect([req.apiKey, req.apiVersion]).toEqual([17, v]);
      const bytes = await body(req);
      expect(bytes).toEqual(Buffer.from([0, 5, ...Buffer.from('PLAIN')]));
      const r = new Reader(bytes);
      expect(decodeSaslHandshakeRequest(r)).toEqual({ mechanism: 'PLAIN' });
      expect(r.remaining).toBe(0);

      const ok = encoded((w) => encodeSaslHandshakeResponse(w, { errorCode: 0, mechanisms: ['PLAIN'] }));
      expect(ok).toEqual(Buffer.from([0, 0, 0, 0, 0, 1, 0, 5, ...Buffer.from('PLAIN')]));
      const res = response('saslHandshake', v);
      expect(await res.parse(await res.decode(ok))).toEqual({ errorCode: 0, enabledMechanisms: ['PLAIN'] });
      const bad = encoded((w) => encodeSaslHandshakeResponse(w, { errorCode: 33, mechanisms: ['PLAIN'] }));
      expect(await res.decode(bad)).toEqual({ errorCode: 33, enabledMechanisms: ['PLAIN'] });
      await expect(res.parse(await res.decode(bad))).rejects.toMatchObject({ type: 'UNSUPPORTED_SASL_MECHANISM' });
    });
  }

  it('refuses a truncated request', () => {
    expect(() => decodeSaslHandshakeRequest(new Reader(Buffer.from([0, 5, 80, 76])))).toThrow(/need 5 bytes/);
  });
});

describe('SaslAuthenticate codec', () => {
  for (const v of [0, 1]) {
    it(`v${v}: decodes kafkajs's PLAIN request; kafkajs decodes our success and failure answers`, async () => {
      const token = await plainToken({ username: 'alice', password: 'p:w,d' }).encode();
      const req = request('saslAuthenticate', v)({ authBytes: token });
      expect([req.apiKey, req.apiVersion]).toEqual([36, v]);
      const bytes = await body(req);
      const r = new Reader(bytes);
      expect(decodeSaslAuthenticateRequest(r).authBytes.toString('latin1')).toBe('\0alice\0p:w,d');
      expect(r.remaining).toBe(0);

      const res = response('saslAuthenticate', v);
      const ok = encoded((w) => encodeSaslAuthenticateResponse(w, v, { errorCode: 0, errorMessage: null, authBytes: Buffer.alloc(0), sessionLifetimeMs: 0 }));
      // error_code, null message, empty bytes, then (v1) session_lifetime_ms
      expect(ok).toEqual(Buffer.from([0, 0, 0xff, 0xff, 0, 0, 0, 0, ...(v >= 1 ? [0, 0, 0, 0, 0, 0, 0, 0] : [])]));
      const decoded = await res.parse(await res.decode(ok));
      expect(decoded.errorCode).toBe(0);
      if (v >= 1) expect(decoded.sessionLifetimeMs).toBe('0');

      const failed = encoded((w) =>
        encodeSaslAuthenticateResponse(w, v, { errorCode: 58, errorMessage: 'Authentication failed: Invalid username or password', authBytes: Buffer.alloc(0), sessionLifetimeMs: 0 }),
      );
      await expect(res.parse(await res.decode(failed))).rejects.toMatchObject({ type: 'SASL_AUTHENTICATION_FAILED', message: 'Authentication failed: Invalid username or password' });
    });
  }

  it('refuses a null or overlong auth_bytes', () => {
    expect(() => decodeSaslAuthenticateRequest(new Reader(Buffer.from([0xff, 0xff, 0xff, 0xff])))).toThrow(/null/);
    expect(() => decodeSaslAuthenticateRequest(new Reader(Buffer.from([0, 0, 0, 9, 1, 2])))).toThrow(/need 9 bytes/);
  });
});
