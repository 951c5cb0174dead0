/** The lean JSON body reader, on in-memory requests: content type, size limit, parsing. */
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readJsonBody } from '../src/body.ts';
import { HttpError } from '../src/http-errors.ts';

/** A request whose body arrives in the given chunks. */
function fakeRequest(headers: Record<string, string>, chunks: (string | Buffer)[] = [], fail?: Error): IncomingMessage {
  const stream = new PassThrough();
  const req = Object.assign(stream, { headers }) as unknown as IncomingMessage;
  setImmediate(() => {
    for (const c of chunks) stream.write(c);
    if (fail) stream.destroy(fail);
    else stream.end();
  });
  return req;
}

async function rejection(p: Promise<unknown>): Promise<HttpError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(HttpError);
    return err as HttpError;
  }
  throw new Error('expected a rejection');
}

const json = { 'content-type': 'application/json' };

describe('readJsonBody', () => {
  it('parses a JSON body arriving in many chunks and keeps its raw bytes', async () => {
    const text = JSON.stringify({ sku: 'S-1', note: 'grüße ✓' });
    const bytes = Buffer.from(text);
    // Split inside multi-byte characters: decoding must happen after joining.
    const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    const body = await readJsonBody(fakeRequest(json, chunks), 1024);
    expect(body.value).toEqual({ sku: 'S-1', note: 'grüße ✓' });
    expect(body.raw.equals(bytes)).toBe(true);
  });

  it('accepts application/json with parameters and +json types, in any case', async () => {
    for (const type of ['application/json; charset=utf-8', 'APPLICATION/JSON', 'application/vnd.spillway+json', 'application/json ;charset=utf-8']) {
      expect((await readJsonBody(fakeRequest({ 'content-type': type }, ['[1]']), 100)).value, type).toEqual([1]);
    }
  });

  it('refuses other or missing content types with 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const cases: Record<string, string>[] = [{}, { 'content-type': 'text/plain' }, { 'content-type': 'application/jsonp' }, { 'content-type': 'multipart/form-data; boundary=x' }, { 'content-type': 'text/json' }];
    for (const headers of cases) {
      const e = await rejection(readJsonBody(fakeRequest(headers, ['{}']), 100));
      expect([e.status, e.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    }
  });

  it('refuses a declared Content-Length over the limit before reading (413)', async () => {
    const req = fakeRequest({ ...json, 'content-length': '101' }, ['x'.repeat(101)]);
    const e = await rejection(readJsonBody(req, 100));
    expect([e.status, e.code, e.extra.limit]).toEqual([413, 'PAYLOAD_TOO_LARGE', 100]);
  });

  it('stops at the limit while reading a body without a length (413), and takes exactly the limit', async () => {
    const over = await rejection(readJsonBody(fakeRequest(json, ['[', '1'.repeat(60), '1'.repeat(60), ']']), 100));
    expect([over.status, over.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const exact = `[${'1'.repeat(98)}]`;
    expect(exact.length).toBe(100);
    expect((await readJsonBody(fakeRequest(json, [exact]), 100)).raw.length).toBe(100);
  });

  it('answers 400 MALFORMED_JSON for bodies that are not JSON', async () => {
    for (const text of ['', '{', '{"a":1,}', "{'a':1}", 'undefined', '\u0000']) {
      const e = await rejection(readJsonBody(fakeRequest(json, [text]), 100));
      expect([e.status, e.code], JSON.stringify(text)).toEqual([400, 'MALFORMED_JSON']);
    }
  });

  it('answers 400 when the body cannot be read', async () => {
    const e = await rejection(readJsonBody(fakeRequest(json, ['{"a":'], new Error('socket hang up')), 100));
    expect([e.status, e.code]).toEqual([400, 'BAD_REQUEST']);
  });
});
