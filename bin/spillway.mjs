#!/usr/bin/env node
// Entry point of the `spillway` command: runs the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('./cli.ts');
await run(process.argv.slice(2));
