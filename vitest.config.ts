import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/test/**/*.test.ts'],
    exclude: ['node_modules/**', 'data/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration tests start real processes; two cores, so keep file parallelism modest.
    maxWorkers: 2,
    // The JSON report is what CI counts ("N passed, N failed").
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-report.json' },
  },
});
