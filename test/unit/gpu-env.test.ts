import { describe, expect, it } from 'vitest';
import { EnvError, gpuEnvSchema, parseEnv } from '@detq/core';

// How GPU engines spread their work comes from the environment; a bad value stops the load with a line
// naming the variable (it silently became 2 before).
describe('GPU settings from the environment', () => {
  it('default to 2 contexts and the addon’s batches per context', () => {
    expect(parseEnv(gpuEnvSchema, {})).toEqual({ DETQ_GPU_CONTEXTS: 2 });
    expect(parseEnv(gpuEnvSchema, { DETQ_GPU_CONTEXTS: '', DETQ_GPU_BATCHES_PER_CONTEXT: '' })).toEqual({ DETQ_GPU_CONTEXTS: 2 });
    expect(parseEnv(gpuEnvSchema, { DETQ_GPU_CONTEXTS: '3', DETQ_GPU_BATCHES_PER_CONTEXT: '3' })).toEqual({ DETQ_GPU_CONTEXTS: 3, DETQ_GPU_BATCHES_PER_CONTEXT: 3 });
  });

  it('refuse values out of range or not integers, naming the variable', () => {
    const error = (env: NodeJS.ProcessEnv) => {
      try {
        parseEnv(gpuEnvSchema, env);
      } catch (err) {
        return err;
      }
      throw new Error('accepted');
    };
    const e = error({ DETQ_GPU_CONTEXTS: '9', DETQ_GPU_BATCHES_PER_CONTEXT: 'two' });
    expect(e).toBeInstanceOf(EnvError);
    expect((e as EnvError).code).toBe('USAGE');
    expect((e as EnvError).variables).toEqual(['DETQ_GPU_CONTEXTS', 'DETQ_GPU_BATCHES_PER_CONTEXT']);
    expect((e as EnvError).message).toBe(
      'DETQ_GPU_CONTEXTS: Too big: expected number to be <=8 (got "9")\nDETQ_GPU_BATCHES_PER_CONTEXT: Invalid input: expected number, received NaN (got "two")',
    );
    expect((error({ DETQ_GPU_BATCHES_PER_CONTEXT: '0' }) as EnvError).message).toBe('DETQ_GPU_BATCHES_PER_CONTEXT: Too small: expected number to be >=1 (got "0")');
    expect((error({ DETQ_GPU_CONTEXTS: '1.5' }) as EnvError).message).toBe('DETQ_GPU_CONTEXTS: Invalid input: expected int, received number (got "1.5")');
  });
});
