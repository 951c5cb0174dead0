/** What every handler may touch: the logs, settings, metrics and the broker's identity. */
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config.ts';
import type { BrokerMetrics } from '../metrics.ts';
import type { LogManager } from '../storage/log-manager.ts';
import type { ProducerIdAllocator } from '../storage/producer-ids.ts';
import type { GroupCoordinator } from '../coordinator/group-coordinator.ts';
import type { Writer } from '../protocol/writer.ts';
import type { Reader } from '../protocol/reader.ts';
import type { PlainAuthenticator } from '../server/sasl-plain.ts';

export const NODE_ID = 0;

export interface BrokerContext {
  logs: LogManager;
  groups: GroupCoordinator;
  producerIds: ProducerIdAllocator;
  config: BrokerConfig;
  metrics: BrokerMetrics;
  log: Logger;
  clusterId: string;
  /** SASL/PLAIN credentials when authentication is on; null = no SASL (and none advertised). */
  sasl: PlainAuthenticator | null;
  /** Host and port clients are told to connect to. */
  advertised(): { host: string; port: number };
  /** True once SIGTERM arrived: long polls answer at once. */
  shuttingDown: boolean;
}

/** Who sent the request (from the request header and the socket). */
export interface RequestInfo {
  clientId: string;
  clientHost: string;
}

/** Encodes the response body into `w`; returns false when no response is sent (acks=0). */
export type Handler = (ctx: BrokerContext, version: number, r: Reader, w: Writer, req: RequestInfo) => Promise<boolean> | boolean;

export interface ApiDef {
  key: number;
  name: string;
  minVersion: number;
  maxVersion: number;
  /** First flexible (KIP-482) version, or Infinity. */
  flexibleFrom: number;
  handle: Handler;
}
