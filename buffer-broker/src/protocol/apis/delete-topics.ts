/**
 * DeleteTopics (key 20), v0-v1.
 *   Request => topic_names[STRING] timeout_ms INT32
 *   Response => throttle_time_ms INT32 (v1+) responses[name STRING error_code INT16]
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface DeleteTopicsRequest {
  topicNames: string[];
  timeoutMs: number;
}

export function decodeDeleteTopicsRequest(r: Reader, _version: number): DeleteTopicsRequest {
  return { topicNames: r.array((r) => r.string()), timeoutMs: r.int32() };
}

export function encodeDeleteTopicsResponse(w: Writer, version: number, results: readonly { name: string; errorCode: number }[]): void {
  if (version >= 1) w.int32(0);
  w.array(results, (w, t) => w.string(t.name).int16(t.errorCode));
}
