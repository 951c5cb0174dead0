/**
 * ApiVersions (key 18), v0-v3.
 *   Request v0-v2 => (empty)
 *   Request v3 => client_software_name COMPACT_STRING client_software_version COMPACT_STRING TAG_BUFFER
 *   Response v0 => error_code INT16 [api_keys => api_key INT16 min_version INT16 max_version INT16]
 *   Response v1-v2 => v0 + throttle_time_ms INT32
 *   Response v3 => error_code INT16 COMPACT_ARRAY[api_key min max TAG_BUFFER] throttle_time_ms TAG_BUFFER
 * An unsupported version is answered in the v0 layout with UNSUPPORTED_VERSION (KIP-511), which
 * makes kafkajs, librdkafka and platformatic fall back.
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface ApiVersionRange {
  apiKey: number;
  minVersion: number;
  maxVersion: number;
}

export interface ApiVersionsRequest {
  clientSoftwareName: string | null;
  clientSoftwareVersion: string | null;
}

export function decodeApiVersionsRequest(r: Reader, version: number): ApiVersionsRequest {
  if (version >= 3) {
    const clientSoftwareName = r.compactString();
    const clientSoftwareVersion = r.compactString();
    r.taggedFields();
    return { clientSoftwareName, clientSoftwareVersion };
  }
  return { clientSoftwareName: null, clientSoftwareVersion: null };
}

export function encodeApiVersionsResponse(w: Writer, version: number, errorCode: number, apis: readonly ApiVersionRange[]): void {
  w.int16(errorCode);
  if (version >= 3) {
    w.compactArray(apis, (w, a) => w.int16(a.apiKey).int16(a.minVersion).int16(a.maxVersion).tags());
    w.int32(0);
    w.tags();
    return;
  }
  w.array(apis, (w, a) => w.int16(a.apiKey).int16(a.minVersion).int16(a.maxVersion));
  if (version >= 1) w.int32(0);
}
