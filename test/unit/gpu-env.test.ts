import { describe, expect, it } from 'vitest';
import { EnvError, gpuEnvSchema, parseEnv } from '@detq/core';
import { createEngine, gpuSettings } from '@detq/inference';
import { MODEL_DYN } from '../helpers/fixtures';

// How GPU engines spread their work comes from the environment; a bad value stops the load with a line
// naming the variable (it silently became 2 before). Unset, they leave the engine its defaults.
describe('GPU settings from the environment', () => {
  it('are absent when unset or empty, else the integers given', () => {
    expect(parseEnv(gpuEnvSchema, {})).toEqual({});
    expect(parseEnv(gpuEnvSchema, { DETQ_GPU_CONTEXTS: '', DETQ_GPU_BATCHES_PER_CONTEXT: '' })).toEqual({});
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
    // The addon's maxBatchesPerContext: checked here, with the others, before any engine loads.
    expect((error({ DETQ_GPU_BATCHES_PER_CONTEXT: '5.0' }) as EnvError).message).toBe('DETQ_GPU_BATCHES_PER_CONTEXT: Too big: expected number to be <=4 (got "5.0")');
    // Both bad variables are named in one run.
    expect((error({ DETQ_GPU_CONTEXTS: '99', DETQ_GPU_BATCHES_PER_CONTEXT: '5' }) as EnvError).variables).toEqual(['DETQ_GPU_CONTEXTS', 'DETQ_GPU_BATCHES_PER_CONTEXT']);
    expect((error({ DETQ_GPU_CONTEXTS: '1.5' }) as EnvError).message).toBe('DETQ_GPU_CONTEXTS: Invalid input: expected int, received number (got "1.5")');
  });
});

describe('a GPU engine’s contexts and batches per context', () => {
  const addon = { batchesPerContext: 3, maxBatchesPerContext: 4 };
  // Torch takes batches 1..maxBatch; a TensorRT plan its profile's range, with a profile per context.
  const torch = (max: number) => ({ batchRange: { min: 1, max } });
  const plan = { batchRange: { min: 1, max: 32 }, profiles: 2 };

  it('come from the options, else one context with the addon’s batches from batch 32 up and two with two each below', () => {
    expect(gpuSettings(addon, { maxBatch: 32 }, torch(32))).toEqual({ contexts: 1, batchesPerContext: 3 });
    expect(gpuSettings(addon, { maxBatch: 64 }, torch(64))).toEqual({ contexts: 1, batchesPerContext: 3 });
    expect(gpuSettings(addon, { maxBatch: 31 }, torch(31))).toEqual({ contexts: 2, batchesPerContext: 2 });
    expect(gpuSettings(addon, { maxBatch: 8 }, torch(8))).toEqual({ contexts: 2, batchesPerContext: 2 });
    // One context keeps the addon's depth, whatever it is.
    expect(gpuSettings({ batchesPerContext: 4, maxBatchesPerContext: 4 }, { maxBatch: 32 }, torch(32))).toEqual({ contexts: 1, batchesPerContext: 4 });
    // A setting given for one leaves the other its default for that setting.
    expect(gpuSettings(addon, { maxBatch: 32, contexts: 2 }, torch(32))).toEqual({ contexts: 2, batchesPerContext: 2 });
    expect(gpuSettings(addon, { maxBatch: 8, contexts: 3 }, torch(8))).toEqual({ contexts: 3, batchesPerContext: 2 });
    expect(gpuSettings(addon, { maxBatch: 8, contexts: 1 }, torch(8))).toEqual({ contexts: 1, batchesPerContext: 3 });
    expect(gpuSettings(addon, { maxBatch: 32, batchesPerContext: 4 }, torch(32))).toEqual({ contexts: 1, batchesPerContext: 4 });
    expect(gpuSettings(addon, { maxBatch: 8, contexts: 3, batchesPerContext: 1 }, torch(8))).toEqual({ contexts: 3, batchesPerContext: 1 });
  });

  it('follow the batch the network runs: the caller’s within the plan’s range, padded up to its min', () => {
    // detq label --batch 8 on a plan built for 32: calls of 8.
    expect(gpuSettings(addon, { maxBatch: 8 }, plan)).toEqual({ contexts: 2, batchesPerContext: 2 });
    // --batch 64 on that plan: calls of 32.
    expect(gpuSettings(addon, { maxBatch: 64 }, plan)).toEqual({ contexts: 1, batchesPerContext: 3 });
    // A plan whose profile starts at 32 pads calls of 8 up to 32.
    expect(gpuSettings(addon, { maxBatch: 8 }, { batchRange: { min: 32, max: 64 }, profiles: 2 })).toEqual({ contexts: 1, batchesPerContext: 3 });
    // No maxBatch: the range's max.
    expect(gpuSettings(addon, {}, plan)).toEqual({ contexts: 1, batchesPerContext: 3 });
  });

  it('never default to more contexts than the plan has profiles; asked for more, contextProfiles refuses them', () => {
    expect(gpuSettings(addon, { maxBatch: 8 }, { ...plan, profiles: 1 })).toEqual({ contexts: 1, batchesPerContext: 3 });
    expect(gpuSettings(addon, { maxBatch: 8, contexts: 2 }, { ...plan, profiles: 1 })).toEqual({ contexts: 2, batchesPerContext: 2 });
  });

  it('refuse more batches than the addon allows, naming the option', () => {
    expect(() => gpuSettings(addon, { batchesPerContext: 5 }, torch(32))).toThrow('batchesPerContext must be an integer from 1 to 4 (got 5)');
    expect(() => gpuSettings(addon, { batchesPerContext: 1.5 }, torch(32))).toThrow('batchesPerContext must be an integer from 1 to 4 (got 1.5)');
    expect(() => gpuSettings(addon, { batchesPerContext: 0 }, torch(32))).toThrow('batchesPerContext must be an integer from 1 to 4 (got 0)');
  });
});

describe('a bad GPU setting with --engine auto', () => {
  it('stops the load naming the variable instead of falling back to the CPU', async () => {
    const notices: string[] = [];
    const before = process.env.DETQ_GPU_CONTEXTS;
    process.env.DETQ_GPU_CONTEXTS = '0';
    try {
      const loading = createEngine('auto', { modelPath: MODEL_DYN, numClasses: 80, threads: 1, notice: (l) => notices.push(l) });
      await expect(loading).rejects.toThrow(new EnvError(['DETQ_GPU_CONTEXTS'], 'DETQ_GPU_CONTEXTS: Too small: expected number to be >=1 (got "0")'));
      expect(notices).toEqual([]);
    } finally {
      if (before === undefined) delete process.env.DETQ_GPU_CONTEXTS;
      else process.env.DETQ_GPU_CONTEXTS = before;
    }
  });
});
