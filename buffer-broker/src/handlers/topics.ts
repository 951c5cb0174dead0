/** Metadata, CreateTopics, DeleteTopics and ListOffsets. */
import { ErrorCode } from '../protocol/error-codes.ts';
import { decodeCreateTopicsRequest, encodeCreateTopicsResponse, type CreateTopicResult } from '../protocol/apis/create-topics.ts';
import { decodeDeleteTopicsRequest, encodeDeleteTopicsResponse } from '../protocol/apis/delete-topics.ts';
import { decodeListOffsetsRequest, encodeListOffsetsResponse, type ListOffsetsPartitionResponse } from '../protocol/apis/list-offsets.ts';
import { decodeMetadataRequest, encodeMetadataResponse, type MetadataTopic } from '../protocol/apis/metadata.ts';
import { TopicError, validateTopicName, type Topic } from '../storage/log-manager.ts';
import { NODE_ID, type BrokerContext, type Handler } from './context.ts';

function topicMetadata(t: Topic): MetadataTopic {
  return {
    errorCode: ErrorCode.NONE,
    name: t.name,
    partitions: t.partitions.map((p) => ({ errorCode: ErrorCode.NONE, partitionIndex: p.partition, leaderId: NODE_ID })),
  };
}

function topicErrorCode(err: unknown): number {
  if (err instanceof TopicError) {
    switch (err.code) {
      case 'INVALID_TOPIC':
        return ErrorCode.INVALID_TOPIC_EXCEPTION;
      case 'TOPIC_ALREADY_EXISTS':
        return ErrorCode.TOPIC_ALREADY_EXISTS;
      case 'INVALID_PARTITIONS':
        return ErrorCode.INVALID_PARTITIONS;
      case 'UNKNOWN_TOPIC':
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
    }
  }
  return ErrorCode.KAFKA_STORAGE_ERROR;
}

export const handleMetadata: Handler = (ctx, version, r, w) => {
  const req = decodeMetadataRequest(r, version);
  const { host, port } = ctx.advertised();
  let topics: MetadataTopic[];
  if (req.topics === null) {
    topics = [...ctx.logs.topics.values()].map(topicMetadata);
  } else {
    topics = req.topics.map((name) => {
      const existing = ctx.logs.topics.get(name);
      if (existing) return topicMetadata(existing);
      if (validateTopicName(name) !== null) return { errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION, name, partitions: [] };
      if (req.allowAutoTopicCreation && ctx.config.autoCreateTopics) {
        try {
          return topicMetadata(ctx.logs.createTopic(name, ctx.config.defaultPartitions));
        } catch (err) {
          ctx.log.error({ err, topic: name }, 'auto-create failed');
          return { errorCode: topicErrorCode(err), name, partitions: [] };
        }
      }
      return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name, partitions: [] };
    });
  }
  encodeMetadataResponse(w, version, { brokers: [{ nodeId: NODE_ID, host, port }], clusterId: ctx.clusterId, controllerId: NODE_ID, topics });
  return true;
};

export const handleCreateTopics: Handler = (ctx, version, r, w) => {
  const req = decodeCreateTopicsRequest(r, version);
  const seen = new Map<string, number>();
  for (const t of req.topics) seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
  const results: CreateTopicResult[] = req.topics.map((t) => {
    const fail = (errorCode: number, errorMessage: string): CreateTopicResult => ({ name: t.name, errorCode, errorMessage });
    if ((seen.get(t.name) ?? 0) > 1) return fail(ErrorCode.INVALID_REQUEST, 'topic named more than once in one request');
    const bad = validateTopicName(t.name);
    if (bad !== null) return fail(ErrorCode.INVALID_TOPIC_EXCEPTION, bad);
    if (ctx.logs.topics.has(t.name)) return fail(ErrorCode.TOPIC_ALREADY_EXISTS, `topic '${t.name}' already exists`);
    if (t.replicationFactor !== -1 && t.replicationFactor !== 1) {
      return fail(ErrorCode.INVALID_REPLICATION_FACTOR, 'single-node broker: replication factor must be 1');
    }
    let partitions = t.numPartitions === -1 ? ctx.config.defaultPartitions : t.numPartitions;
    if (t.assignments.length > 0) {
      if (t.numPartitions !== -1) return fail(ErrorCode.INVALID_REQUEST, 'give either numPartitions or assignments');
      if (t.assignments.some((a) => a.brokerIds.some((b) => b !== NODE_ID))) return fail(ErrorCode.INVALID_REPLICATION_FACTOR, 'replicas must be on broker 0');
      partitions = t.assignments.length;
    }
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) return fail(ErrorCode.INVALID_PARTITIONS, 'partitions must be 1..1024');
    if (req.validateOnly) return { name: t.name, errorCode: ErrorCode.NONE, errorMessage: null };
    try {
      ctx.logs.createTopic(t.name, partitions);
      return { name: t.name, errorCode: ErrorCode.NONE, errorMessage: null };
    } catch (err) {
      return fail(topicErrorCode(err), (err as Error).message);
    }
  });
  encodeCreateTopicsResponse(w, version, results);
  return true;
};

export const handleDeleteTopics: Handler = async (ctx, version, r, w) => {
  const req = decodeDeleteTopicsRequest(r, version);
  const results = await Promise.all(
    req.topicNames.map(async (name) => {
      try {
        await ctx.logs.deleteTopic(name);
        return { name, errorCode: ErrorCode.NONE };
      } catch (err) {
        return { name, errorCode: topicErrorCode(err) };
      }
    }),
  );
  encodeDeleteTopicsResponse(w, version, results);
  return true;
};

async function listOffset(ctx: BrokerContext, topic: string, partition: number, timestamp: number): Promise<ListOffsetsPartitionResponse> {
  const log = ctx.logs.getPartition(topic, partition);
  const res = { partitionIndex: partition, errorCode: ErrorCode.NONE, timestamp: -1, offset: -1 };
  if (!log) return { ...res, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
  if (timestamp === -1) return { ...res, offset: log.highWatermark };
  if (timestamp === -2) return { ...res, offset: log.logStartOffset };
  if (timestamp < 0) return { ...res, errorCode: ErrorCode.INVALID_REQUEST };
  const hit = await log.offsetForTimestamp(timestamp);
  return hit ? { ...res, offset: hit.offset, timestamp: hit.timestamp } : res;
}

export const handleListOffsets: Handler = async (ctx, version, r, w) => {
  const req = decodeListOffsetsRequest(r, version);
  const topics = await Promise.all(
    req.topics.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(t.partitions.map((p) => listOffset(ctx, t.name, p.partitionIndex, p.timestamp))),
    })),
  );
  encodeListOffsetsResponse(w, version, topics);
  return true;
};
