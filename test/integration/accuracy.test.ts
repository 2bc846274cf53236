import { describe, expect, it, vi } from 'vitest';
import { main } from '@detq/cli';
import { COCO_IMAGES, COCO_LABELS, MODEL_DYN, tempDir } from '../helpers/fixtures';

// Ultralytics 8.3.166 `val` on the same weights, coco128, FP32, square letterbox (../shared/models/SOURCES.md).
const ULTRALYTICS = { map5095: 0.486, map50: 0.661 };

describe('accuracy on coco128 matches Ultralytics val', () => {
  it('detq label + detq eval within ±0.003 of mAP50-95 0.486 and mAP50 0.661', async () => {
    const out = await tempDir();
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const label = ['label', COCO_IMAGES, '--out', out, '--model', MODEL_DYN, '--conf', '0.001', '--iou', '0.7', '--max-det', '300', '--multi-label'];
    expect(await main(['node', 'detq', ...label])).toBe(0);
    const writes: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (writes.push(String(s)), true));
    expect(await main(['node', 'detq', 'eval', '--pred', out, '--labels', COCO_LABELS, '--json'])).toBe(0);
    vi.restoreAllMocks();
    const m = JSON.parse(writes.join(''));
    console.log(`coco128: mAP50-95 ${m.map5095}, mAP50 ${m.map50}`);
    expect(m.images).toBe(128);
    expect(m.instances).toBe(929);
    expect(Math.abs(m.map5095 - ULTRALYTICS.map5095)).toBeLessThanOrEqual(0.003);
    expect(Math.abs(m.map50 - ULTRALYTICS.map50)).toBeLessThanOrEqual(0.003);
    // 128 images at conf 0.001 on a shared 2-core machine can take minutes.
  }, 600_000);
});
