/** Promise wrappers over the callback fs API (lighter than FileHandle on hot paths). */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

export function writev(fd: number, buffers: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, buffers, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}
export const fdatasync = promisify(fs.fdatasync);
export const ftruncate = promisify(fs.ftruncate);
export const close = promisify(fs.close);

export function read(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Reads exactly `length` bytes at `position` unless EOF comes first; returns the bytes read. */
export async function readFully(fd: number, length: number, position: number): Promise<Buffer> {
  return readFullyInto(fd, Buffer.allocUnsafe(length), position);
}

/** Fills `buf` from `position` unless EOF comes first; returns the filled part of `buf`. */
export async function readFullyInto(fd: number, buf: Buffer, position: number): Promise<Buffer> {
  const length = buf.length;
  let got = 0;
  while (got < length) {
    const n = await read(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

export function readFullySync(fd: number, length: number, position: number): Buffer {
  return readFullyIntoSync(fd, Buffer.allocUnsafe(length), position);
}

export function readFullyIntoSync(fd: number, buf: Buffer, position: number): Buffer {
  const length = buf.length;
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** fsync a directory so that created, renamed or deleted entries in it are durable. */
export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces `file` atomically and durably: write a temp file, fsync it, rename, fsync the directory. */
export function writeFileAtomicSync(file: string, data: string): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDirSync(path.dirname(file));
}

/**
 * writeFileAtomicSync off the event loop (every step in the libuv pool), for periodic writes
 * whose two fsyncs would otherwise stall every request for their duration. Calls for the same
 * file must not overlap (they share the temp file).
 */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fs.promises.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
  const dir = await fs.promises.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
