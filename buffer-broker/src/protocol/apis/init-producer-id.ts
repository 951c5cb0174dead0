/**
 * InitProducerId (key 22), v0-v1 (v2+ is flexible and not served).
 *   Request => transactional_id NULLABLE_STRING transaction_timeout_ms INT32
 *   Response => throttle_time_ms INT32 error_code INT16 producer_id INT64 producer_epoch INT16
 * throttle_time_ms is present from v0. Clients without transactions send transactional_id null
 * (kafkajs timeout 60000, librdkafka -1, platformatic 5000).
 */
import type { Reader } from '../reader.ts';
import type { Writer } from '../writer.ts';

export interface InitProducerIdRequest {
  transactionalId: string | null;
  transactionTimeoutMs: number;
}
export interface InitProducerIdResponse {
  errorCode: number;
  producerId: number;
  producerEpoch: number;
}

export function decodeInitProducerIdRequest(r: Reader, _version: number): InitProducerIdRequest {
  return { transactionalId: r.nullableString(), transactionTimeoutMs: r.int32() };
}

export function encodeInitProducerIdResponse(w: Writer, _version: number, res: InitProducerIdResponse): void {
  w.int32(0).int16(res.errorCode).int64(res.producerId).int16(res.producerEpoch);
}
