import { defineConfig } from 'vitest/config';

// The suite runs real models on a 2-core machine: files run one at a time so CPU-heavy tests do not
// starve each other (and process/fault tests keep their meaning). GPU tests have their own config.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/gpu/**', '**/node_modules/**'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
