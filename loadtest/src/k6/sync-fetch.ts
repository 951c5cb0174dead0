/**
 * Synchronous HTTP for k6's synchronous `http.get/post/...` in `setup()` and `teardown()`: a worker
 * thread does the fetch while the main thread blocks on Atomics.wait. Blocking is what k6's API
 * means there; during the run it would stall every VU, so the shim counts such calls and warns.
 */
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';

export interface SyncRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
  timeoutMs: number;
}

export type SyncResult =
  | { ok: true; status: number; headers: [string, string][]; body: string; durationMs: number }
  | { ok: false; error: string; timeout: boolean; durationMs: number };

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', async (m) => {
  const t0 = performance.now();
  let result;
  try {
    const res = await fetch(m.url, { method: m.method, headers: m.headers, body: m.body ?? undefined, signal: AbortSignal.timeout(m.timeoutMs) });
    const body = await res.text();
    result = { ok: true, status: res.status, headers: [...res.headers], body, durationMs: performance.now() - t0 };
  } catch (err) {
    const e = err && err.cause ? err.cause : err;
    result = { ok: false, error: String((e && e.message) || e), timeout: !!(err && (err.name === 'TimeoutError' || err.name === 'AbortError')), durationMs: performance.now() - t0 };
  }
  m.port.postMessage(result);
  Atomics.store(m.flag, 0, 1);
  Atomics.notify(m.flag, 0);
});
`;

let worker: Worker | null = null;

function getWorker(): Worker {
  if (worker === null) {
    worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
  }
  return worker;
}

export function fetchSync(req: SyncRequest): SyncResult {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const t0 = performance.now();
  getWorker().postMessage({ ...req, flag, port: port2 }, [port2]);
  const waited = Atomics.wait(flag, 0, 0, req.timeoutMs + 5000);
  const msg = receiveMessageOnPort(port1);
  port1.close();
  if (waited === 'timed-out' || msg === undefined) return { ok: false, error: 'request timeout', timeout: true, durationMs: performance.now() - t0 };
  return msg.message as SyncResult;
}

export async function stopSyncWorker(): Promise<void> {
  if (worker !== null) {
    const w = worker;
    worker = null;
    await w.terminate();
  }
}
