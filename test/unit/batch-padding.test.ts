import { describe, expect, it } from 'vitest';
import { contextProfiles, paddedBatch, paddedBatchSizes } from '@detq/inference';

describe('paddedBatchSizes', () => {
  it('doubles up to 8, then steps by 8, up to max', () => {
    expect(paddedBatchSizes({ min: 1, max: 32 })).toEqual([1, 2, 4, 8, 16, 24, 32]);
    expect(paddedBatchSizes({ min: 1, max: 8 })).toEqual([1, 2, 4, 8]);
    expect(paddedBatchSizes({ min: 1, max: 1 })).toEqual([1]);
    expect(paddedBatchSizes({ min: 1, max: 20 })).toEqual([1, 2, 4, 8, 16, 20]);
  });

  it('never goes below the profile min and always holds min, opt and max', () => {
    expect(paddedBatchSizes({ min: 4, opt: 12, max: 32 })).toEqual([4, 8, 12, 16, 24, 32]);
    expect(paddedBatchSizes({ min: 3, opt: 3, max: 5 })).toEqual([3, 4, 5]);
    expect(paddedBatchSizes({ min: 16, opt: 16, max: 16 })).toEqual([16]);
  });

  it('refuses a range that is not 1 <= min <= opt <= max', () => {
    expect(() => paddedBatchSizes({ min: 0, max: 8 })).toThrow(/not 1 <= min <= opt <= max/);
    expect(() => paddedBatchSizes({ min: 4, opt: 2, max: 8 })).toThrow(/min 4 \/ opt 2 \/ max 8/);
  });
});

describe('paddedBatch', () => {
  const sizes = paddedBatchSizes({ min: 4, opt: 16, max: 32 });
  it('pads to the smallest size that holds the batch, never below min or above max', () => {
    expect([1, 3, 4, 5, 9, 16, 17, 25, 32].map((b) => paddedBatch(b, sizes))).toEqual([4, 4, 4, 8, 16, 16, 24, 32, 32]);
    expect(() => paddedBatch(33, sizes)).toThrow(/batch 33 exceeds the engine's largest batch 32/);
  });
});

describe('contextProfiles', () => {
  it('gives each execution context its own optimisation profile', () => {
    expect(contextProfiles(2, 2)).toEqual([0, 1]);
    expect(contextProfiles(1, 3)).toEqual([0]);
    expect(contextProfiles(3, undefined)).toEqual([undefined, undefined, undefined]);
  });

  it('refuses more contexts than profiles instead of sharing one', () => {
    expect(() => contextProfiles(2, 1)).toThrow(/has 1 optimisation profile, one per execution context, so it cannot run 2 contexts: rebuild it with `detq build-engine --contexts 2`/);
    expect(() => contextProfiles(0, 1)).toThrow(/--contexts must be a positive integer/);
  });
});
