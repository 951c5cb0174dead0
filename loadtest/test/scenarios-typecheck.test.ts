/** The k6 scenarios type-check against @types/k6 (the k6 runtime's API, not Node's). */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { repoRoot, run } from '../../lib/src/testing/processes.ts';

describe('loadtest/scenarios', () => {
  it('type-check against @types/k6', async () => {
    const r = await run(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', path.join(repoRoot, 'loadtest/scenarios/tsconfig.json')], { timeoutMs: 90_000 });
    expect(r.stdout.toString() + r.stderr, 'tsc -p loadtest/scenarios').toBe('');
    expect(r.code).toBe(0);
  }, 100_000);
});
