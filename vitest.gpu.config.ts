import { defineConfig } from 'vitest/config';

// The GPU suite (`npm run test:gpu`): only on a machine with an NVIDIA GPU, never in the normal run.
// Its global setup builds the native addon first; files run one at a time so they do not share the GPU.
export default defineConfig({
  test: {
    include: ['test/gpu/**/*.test.ts'],
    globalSetup: ['test/gpu/build-native.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 900_000,
    reporters: ['default'],
  },
});
