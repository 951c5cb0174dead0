/** Reads one sample from a broker's /metrics: the first capture group of `re`, as a number; 0 when absent (a labelled counter not yet incremented). */
export async function brokerMetric(metricsPort: number, re: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(re.exec(text)?.[1] ?? 0);
}

/** spillway_broker_buffer_pool_total{source="reused"}: buffers the pool handed out again. */
export const POOL_REUSED = /spillway_broker_buffer_pool_total\{source="reused"\} (\d+)/;
