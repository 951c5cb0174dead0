/**
 * Messages between the bench (parent) and its child processes over the fork() IPC channel:
 * the open-model load generator and the reference servers. Types only, no behaviour.
 */
import type { LatencySummary } from './histogram.ts';

export interface LoadConfig {
  type: 'config';
  host: string;
  port: number;
  path: string;
  /** The status that counts as success (202 for every server measured here). */
  okStatus: number;
  /** Most connections open at once; each carries one request at a time (no pipelining). */
  maxConnections: number;
  /** Connections opened up front (more open on demand, up to maxConnections). */
  initialConnections: number;
  /** A request not answered this long after its scheduled start is a timeout (an error). */
  timeoutMs: number;
  /** userId prefix; each request gets `${userPrefix}${n}` with n unique within the generator. */
  userPrefix: string;
  skus: number;
  /** Send a unique Idempotency-Key header with each order. */
  idempotencyKeys: boolean;
  /** `raw`: the generator's own minimal HTTP/1.1 client; `undici`: an undici Pool (pipelining 1),
   * a cross-check that costs the generator more CPU per request. */
  client: 'raw' | 'undici';
}

export interface StepCommand {
  type: 'step';
  id: number;
  /** Arrivals per second, scheduled at exact intervals whatever the response times. */
  rate: number;
  /** Run at `rate` this long before the measured window (not measured). */
  warmupMs: number;
  durationMs: number;
}

export type ToGenerator = LoadConfig | StepCommand | { type: 'exit' };

export interface StepStats {
  id: number;
  rate: number;
  /** Requests scheduled in the whole step (warm-up included) and in the measured window. */
  scheduled: number;
  scheduledInWindow: number;
  /** Successful answers to requests scheduled in the window. */
  ok: number;
  /** Successful answers that arrived inside the window (for throughput and CPU per request). */
  okCompletedInWindow: number;
  windowMs: number;
  /** Errors over the whole step (warm-up included): unexpected statuses, socket errors, timeouts. */
  errors: { total: number; byStatus: Record<string, number>; socket: number; timeout: number; protocol: number };
  /** Scheduled start to last response byte, requests scheduled in the window (coordinated-omission-free). */
  latency: LatencySummary;
  /** Scheduled start to the moment the generator handed the request to a connection or the queue:
   * how far the generator's own timer ran behind its schedule. */
  dispatchLag: LatencySummary;
  /** Scheduled start to the write on a socket (includes waiting for a free connection). */
  sendDelay: LatencySummary;
  connectionsOpened: number;
  peakConnections: number;
  peakQueued: number;
}

export type FromGenerator =
  | { type: 'ready'; connections: number }
  | { type: 'mark'; id: number; phase: 'start' | 'end' }
  | { type: 'result'; stats: StepStats }
  | { type: 'failed'; message: string };

export type ReferenceKind = 'bare' | 'express';

export type FromReference = { type: 'listening'; port: number };
