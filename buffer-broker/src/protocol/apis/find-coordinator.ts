/**
 * FindCoordinator (key 10), v0-v2. On a single node the coordinator is always this broker.
 *   Request => key STRING key_type INT8 (v1+)
 *   Response v0 => error_code INT16 node_id INT32 host STRING port INT32
 *   Response v1-v2 => throttle_time_ms INT32 error_code INT16 error_message NULLABLE_STRING node_id host port
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface FindCoordinatorRequest {
  key: string;
  keyType: number;
}

export function decodeFindCoordinatorRequest(r: Reader, version: number): FindCoordinatorRequest {
  const key = r.string();
  const keyType = version >= 1 ? r.int8() : 0;
  return { key, keyType };
}

export function encodeFindCoordinatorResponse(
  w: Writer,
  version: number,
  res: { errorCode: number; errorMessage: string | null; nodeId: number; host: string; port: number },
): void {
  if (version >= 1) w.int32(0);
  w.int16(res.errorCode);
  if (version >= 1) w.nullableString(res.errorMessage);
  w.int32(res.nodeId).string(res.host).int32(res.port);
}
