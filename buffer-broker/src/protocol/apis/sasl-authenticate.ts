/**
 * SaslAuthenticate (key 36), v0-v1 (v2+ is flexible and not served).
 *   Request v0-v1 => auth_bytes BYTES
 *   Response v0 => error_code INT16 error_message NULLABLE_STRING auth_bytes BYTES
 *   Response v1 => v0 + session_lifetime_ms INT64   (0 = the session never expires; no re-authentication)
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface SaslAuthenticateRequest {
  authBytes: Buffer;
}

export interface SaslAuthenticateResponse {
  errorCode: number;
  errorMessage: string | null;
  authBytes: Buffer;
  sessionLifetimeMs: number;
}

export function decodeSaslAuthenticateRequest(r: Reader): SaslAuthenticateRequest {
  return { authBytes: r.bytes() };
}

export function encodeSaslAuthenticateResponse(w: Writer, version: number, res: SaslAuthenticateResponse): void {
  w.int16(res.errorCode);
  w.nullableString(res.errorMessage);
  w.bytes(res.authBytes);
  if (version >= 1) w.int64(res.sessionLifetimeMs);
}
