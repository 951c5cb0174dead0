#!/usr/bin/env node
// Entry point of the `spillway` command: runs the TypeScript sources through tsx.
// More libuv threads than the default 4: the broker's group commit issues one write and one
// fdatasync per partition per round, and fetches read files, all through the thread pool.
// (Read lazily by libuv on first use, so setting it here, before any async I/O, takes effect.)
process.env.UV_THREADPOOL_SIZE ??= '16';

// Imported after the line above (static imports would run first).
const { register } = await import('tsx/esm/api');
register();
const { run } = await import('./cli.ts');
await run(process.argv.slice(2));
