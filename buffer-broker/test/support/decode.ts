/** Decodes stored record batches with kafkajs's own RecordBatch decoder (an independent check). */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Decoder = require('kafkajs/src/protocol/decoder') as new (b: Buffer) => { canReadInt64: () => boolean; offset: number };
const RecordBatchDecoder = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (d: unknown) => Promise<{
  records: { offset: string; value: Buffer | null; key: Buffer | null; timestamp: string }[];
}>;

export async function decodeBatches(data: Buffer): Promise<{ offset: number; value: string; key: string | null; timestamp: number }[]> {
  const out: { offset: number; value: string; key: string | null; timestamp: number }[] = [];
  let pos = 0;
  while (pos + 12 <= data.length) {
    const size = data.readInt32BE(pos + 8) + 12;
    if (pos + size > data.length) break;
    const batch = await RecordBatchDecoder(new Decoder(data.subarray(pos, pos + size)));
    for (const r of batch.records) {
      out.push({ offset: Number(r.offset), value: r.value?.toString() ?? '', key: r.key?.toString() ?? null, timestamp: Number(r.timestamp) });
    }
    pos += size;
  }
  return out;
}
