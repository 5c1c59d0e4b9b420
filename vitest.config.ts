import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end tests start real peers in network namespaces; two cores are shared.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
