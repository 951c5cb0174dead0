/**
 * SaslHandshake (key 17), v0-v1.
 *   Request v0-v1 => mechanism STRING
 *   Response v0-v1 => error_code INT16 mechanisms [STRING]
 * v0 and v1 differ only in what follows a successful handshake: after v0 the client sends the
 * SASL tokens as bare size-prefixed frames (no request header); after v1 it wraps them in
 * SaslAuthenticate requests.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface SaslHandshakeRequest {
  mechanism: string;
}

export interface SaslHandshakeResponse {
  errorCode: number;
  mechanisms: readonly string[];
}

export function decodeSaslHandshakeRequest(r: Reader): SaslHandshakeRequest {
  return { mechanism: r.string() };
}

export function encodeSaslHandshakeResponse(w: Writer, res: SaslHandshakeResponse): void {
  w.int16(res.errorCode);
  w.array(res.mechanisms, (w, m) => w.string(m));
}
