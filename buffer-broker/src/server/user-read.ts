/**
 * Reads a server-side socket into one reused buffer instead of a fresh ArrayBuffer per read.
 *
 * Node offers this (`onread`) only to sockets the application constructs; sockets accepted by
 * net.Server get a new ArrayBuffer for every read (up to 64 KiB). V8 counts that memory, allocated
 * since its last mark-compact, against the old generation's limit, and with the broker's small
 * live heap (~12 MB) that limit is only 10-16 MB away. So a broker taking 40-150 MB/s of produce
 * requests ran a full mark-compact every 100-200 ms that freed almost nothing: 45 in one
 * `bench:broker` group run (--trace-gc), 2-20 ms of main-thread pause each. Reading into one
 * buffer per connection (copied into pooled chunks): 1 in the same run, and the broker's CPU per
 * record 1.1 -> 0.8 us at full speed, 2.4 -> 1.8 us at half speed.
 *
 * This turns on, for an accepted socket, the mechanism Node uses for `onread`: the handle reads
 * into `buffer`, and `onRead(n, buffer)` gets the bytes, which it must copy out before returning
 * (the next read overwrites them). Returning false stops reading; resume() starts it again. It
 * relies on Node's internal socket fields (the kBuffer, kBufferCb and kBufferGen symbols and the
 * handle's useUserBuffer, as in Node 20); where they are missing it returns null and the caller
 * reads 'data' events as before. test/server/user-read.test.ts checks it on the running Node.
 */
import type net from 'node:net';

interface Handle {
  useUserBuffer?: (buf: Uint8Array) => void;
  readStart?: () => number;
  reading?: boolean;
}

function internalSymbol(obj: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(obj).find((s) => s.description === description);
}

export interface UserRead {
  /** Starts reading again after onRead returned false. */
  resume(): void;
}

export function readIntoUserBuffer(socket: net.Socket, buffer: Buffer, onRead: (n: number, buffer: Buffer) => boolean): UserRead | null {
  const handle = (socket as unknown as { _handle?: Handle | null })._handle;
  const kBuffer = internalSymbol(socket, 'kBuffer');
  const kBufferCb = internalSymbol(socket, 'kBufferCb');
  const kBufferGen = internalSymbol(socket, 'kBufferGen');
  if (!handle || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function' || !kBuffer || !kBufferCb || !kBufferGen) return null;
  const s = socket as unknown as Record<symbol, unknown>;
  s[kBuffer] = buffer;
  s[kBufferCb] = onRead;
  s[kBufferGen] = null;
  handle.useUserBuffer(buffer);
  return {
    resume: () => {
      if (handle.reading || socket.destroyed) return;
      handle.reading = true;
      handle.readStart?.();
    },
  };
}
