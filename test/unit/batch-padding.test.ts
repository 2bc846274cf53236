import { describe, expect, it } from 'vitest';
import { contextProfiles, paddedBatch, paddedBatchSizes, stagingCalls } from '@detq/inference';

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
    expect(() => contextProfiles(2, 1)).toThrow(
      'the engine has 1 optimisation profile, one per execution context, so it cannot run 2 contexts: rebuild it with `detq build-engine --contexts 2` or set DETQ_GPU_CONTEXTS=1',
    );
    expect(() => contextProfiles(0, 1)).toThrow(/--contexts must be a positive integer/);
  });
});

describe('stagingCalls', () => {
  // Decoded bytes per frame: width x height x 3, whether the frame is RGB or a JPEG decoded on the device.
  const frame = (megapixels: number) => ({ width: megapixels * 1000, height: 1000 });
  const sizes = (calls: { width: number }[][]) => calls.map((c) => c.map((f) => f.width / 1000));

  it('splits a batch at maxBatch frames and at the staged bytes cap, keeping the order', () => {
    const cap = 100 * 3e6; // 100 MP of RGB
    expect(sizes(stagingCalls(Array.from({ length: 5 }, () => frame(1)), 2, cap))).toEqual([[1, 1], [1, 1], [1]]);
    expect(sizes(stagingCalls([frame(40), frame(40), frame(30), frame(10), frame(50)], 32, cap))).toEqual([[40, 40], [30, 10, 50]]);
    expect(sizes(stagingCalls([frame(12), frame(12)], 32, cap))).toEqual([[12, 12]]);
  });

  it('lets one frame larger than the cap through alone', () => {
    expect(sizes(stagingCalls([frame(1), frame(150), frame(1)], 32, 100 * 3e6))).toEqual([[1], [150], [1]]);
    expect(stagingCalls([], 32, 1)).toEqual([]);
  });
});
