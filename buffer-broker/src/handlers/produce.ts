/**
 * Produce: validates each partition's batch, appends it (offsets assigned synchronously, in
 * request order), and answers once every append is durable. acks=0 gets no answer at all.
 */
import { ErrorCode } from '../protocol/error-codes.ts';
import { decodeProduceRequest, encodeProduceResponse, type ProducePartitionResponse, type ProduceTopicResponse } from '../protocol/apis/produce.ts';
import { Attr, validateProducedBatch } from '../protocol/record-batch.ts';
import { ProducerSequenceError } from '../storage/partition-log.ts';
import type { Handler } from './context.ts';

/** The one mapping from append failures to Kafka error codes. */
function produceErrorCode(err: unknown): number {
  if (err instanceof ProducerSequenceError) return ErrorCode[err.code];
  return ErrorCode.KAFKA_STORAGE_ERROR;
}

export const handleProduce: Handler = async (ctx, version, r, w) => {
  const req = decodeProduceRequest(r, version);
  const waits: Promise<void>[] = [];
  const validAcks = req.acks === -1 || req.acks === 0 || req.acks === 1;
  const topics: ProduceTopicResponse[] = req.topics.map((t) => ({
    name: t.name,
    partitions: t.partitions.map((p) => {
      const res: ProducePartitionResponse = { index: p.index, errorCode: ErrorCode.NONE, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 };
      const refuse = (code: number) => {
        res.errorCode = code;
        ctx.metrics.produceErrors.inc({ error: String(code) });
      };
      if (version < 3) return refuse(ErrorCode.UNSUPPORTED_VERSION), res;
      if (!validAcks) return refuse(ErrorCode.INVALID_REQUIRED_ACKS), res;
      if (req.transactionalId !== null) return refuse(ErrorCode.INVALID_TXN_STATE), res;
      const log = ctx.logs.getPartition(t.name, p.index);
      if (!log) return refuse(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), res;
      res.logStartOffset = log.logStartOffset;
      if (p.records === null) return refuse(ErrorCode.CORRUPT_MESSAGE), res;
      const v = validateProducedBatch(p.records, ctx.config.maxMessageBytes, version);
      if (!v.ok) return refuse(v.error), res;
      const h = v.batch.header;
      if (h.attributes & Attr.TRANSACTIONAL) return refuse(ErrorCode.INVALID_TXN_STATE), res;
      ctx.metrics.bytesIn.inc({ topic: t.name }, p.records.length);
      ctx.metrics.messagesIn.inc({ topic: t.name }, h.recordsCount);
      waits.push(
        ctx.logs
          .append(log, {
            bytes: v.batch.bytes,
            lastOffsetDelta: h.lastOffsetDelta,
            maxTimestamp: h.maxTimestamp,
            baseTimestamp: h.baseTimestamp,
            attributes: h.attributes,
            producerId: h.producerId,
            producerEpoch: h.producerEpoch,
            baseSequence: h.baseSequence,
          })
          .then(
            (base) => {
              res.baseOffset = base;
            },
            (err: unknown) => {
              if (!(err instanceof ProducerSequenceError)) ctx.log.error({ err, topic: t.name, partition: p.index }, 'append failed');
              refuse(produceErrorCode(err));
            },
          ),
      );
      return res;
    }),
  }));
  await Promise.all(waits);
  if (req.acks === 0) return false;
  encodeProduceResponse(w, version, topics);
  return true;
};
