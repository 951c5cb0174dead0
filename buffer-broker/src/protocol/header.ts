/**
 * Request header v1/v2 and response header v0/v1.
 *
 *   Request Header v1 => api_key api_version correlation_id client_id
 *     api_key => INT16, api_version => INT16, correlation_id => INT32, client_id => NULLABLE_STRING
 *   Request Header v2 => v1 + TAG_BUFFER   (client_id stays a classic INT16-length string)
 *   Response Header v0 => correlation_id INT32;  v1 => v0 + TAG_BUFFER
 * ApiVersions always answers with response header v0, even for v3.
 */
import type { Reader } from './reader.ts';
import type { Writer } from './writer.ts';

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
}

/** Reads api_key/api_version/correlation_id only; the rest depends on the API's flexibility. */
export function readRequestHeaderPrefix(r: Reader): Omit<RequestHeader, 'clientId'> {
  return { apiKey: r.int16(), apiVersion: r.int16(), correlationId: r.int32() };
}

export function readRequestHeaderRest(r: Reader, flexible: boolean): string | null {
  const clientId = r.nullableString();
  if (flexible) r.taggedFields();
  return clientId;
}

export function writeResponseHeader(w: Writer, correlationId: number, flexibleHeader: boolean): void {
  w.int32(correlationId);
  if (flexibleHeader) w.tags();
}
