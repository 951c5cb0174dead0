/**
 * Allocates idempotent producer ids that are never reused, across restarts and crashes: ids
 * are reserved in blocks whose upper bound is made durable (atomic write + fsync) before any id
 * of the block is handed out.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from './fs-async.ts';

const BLOCK = 1000;
const FIRST_ID = 1000;

export class ProducerIdAllocator {
  private next = FIRST_ID;
  private reservedUpTo = FIRST_ID;
  private readonly file: string;

  constructor(dataDir: string) {
    this.file = path.join(dataDir, 'producer-id-block');
    try {
      const saved = Number(fs.readFileSync(this.file, 'utf8'));
      if (Number.isSafeInteger(saved) && saved >= FIRST_ID) this.next = this.reservedUpTo = saved;
    } catch {
      // first start
    }
  }

  allocate(): number {
    if (this.next >= this.reservedUpTo) {
      this.reservedUpTo = this.next + BLOCK;
      writeFileAtomicSync(this.file, String(this.reservedUpTo));
    }
    return this.next++;
  }
}
