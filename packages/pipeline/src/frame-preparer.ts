import { decodeImage, DEFAULT_DECODE_LIMITS, letterboxRgb, type DecodeLimits } from '@detq/imaging';
import type { EngineInfo, Frame } from '@detq/inference';

export interface PreparedImage {
  frame: Frame;
  /** Oriented source size: detections are in these pixels. */
  width: number;
  height: number;
  /** Oriented uint8 RGB of the source, kept only when asked (previews). */
  rgb?: Uint8Array;
}

/** Turns encoded bytes into the frame layout the engine takes. Bad images throw an ImageError. */
export class FramePreparer {
  constructor(
    private readonly engine: Pick<EngineInfo, 'accepts' | 'inputWidth' | 'inputHeight'>,
    private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  ) {}

  async prepare(bytes: Buffer, keepRgb = false): Promise<PreparedImage> {
    const img = await decodeImage(bytes, this.limits);
    const base = { width: img.width, height: img.height, ...(keepRgb ? { rgb: img.rgb } : {}) };
    if (this.engine.accepts === 'rgb')
      return { ...base, frame: { layout: 'rgb', pixels: img.rgb, width: img.width, height: img.height } };
    const { inputWidth: w, inputHeight: h } = this.engine;
    const lb = letterboxRgb(img.rgb, img.width, img.height, w, h);
    return { ...base, frame: { layout: 'letterboxed', pixels: lb.pixels, width: w, height: h, letterbox: lb.letterbox } };
  }
}
