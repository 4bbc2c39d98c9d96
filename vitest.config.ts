import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global-setup.ts'],
    // A bound on a hang, not a speed check: the end-to-end tests (whole local runs, a SIGKILL and
    // a resume, bundles run on Node 24) take up to a minute on two idle cores, several when
    // the cores are shared.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Two cores: integration tests start servers and run sharp; more workers only thrash.
    maxWorkers: 2,
  },
});
