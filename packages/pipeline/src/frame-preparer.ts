import { decodeImage, decodeLetterboxed, DEFAULT_DECODE_LIMITS, inspectForDeviceDecode, type DecodeLimits } from '@detq/imaging';
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
  private readonly deviceJpeg: boolean;

  constructor(
    private readonly engine: Pick<EngineInfo, 'accepts' | 'inputWidth' | 'inputHeight' | 'encodedFormats'>,
    private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
    /** 'cpu' decodes everything with sharp even where the engine could decode on the device. */
    decode: 'auto' | 'cpu' = 'auto',
  ) {
    this.deviceJpeg = decode === 'auto' && (engine.encodedFormats ?? []).includes('jpeg');
  }

  /**
   * JPEGs the engine decodes itself leave as 'encoded' frames after a header read (no decoding here);
   * everything else, and images whose RGB is kept for previews, is decoded on the CPU.
   */
  async prepare(bytes: Buffer, keepRgb = false): Promise<PreparedImage> {
    if (this.deviceJpeg && !keepRgb) {
      const h = inspectForDeviceDecode(bytes, this.limits);
      if (h)
        return {
          width: h.width,
          height: h.height,
          frame: { layout: 'encoded', format: 'jpeg', bytes, width: h.width, height: h.height, orientation: h.orientation },
        };
    }
    return this.decode(bytes, keepRgb);
  }

  /** The CPU path (sharp): also where an encoded frame the device could not decode comes back to. */
  async decode(bytes: Buffer, keepRgb = false): Promise<PreparedImage> {
    if (this.engine.accepts === 'letterboxed') {
      // CPU engines: libvips decodes straight to the input size (shrink-on-load, resize, pad).
      const { inputWidth: w, inputHeight: h } = this.engine;
      const lb = await decodeLetterboxed(bytes, w, h, this.limits);
      const frame: Frame = { layout: 'letterboxed', pixels: lb.pixels, width: w, height: h, letterbox: lb.letterbox };
      const base = { frame, width: lb.letterbox.srcWidth, height: lb.letterbox.srcHeight };
      // Previews draw on the full image: only those few images are decoded a second time, at full size.
      return keepRgb ? { ...base, rgb: (await decodeImage(bytes, this.limits)).rgb } : base;
    }
    const img = await decodeImage(bytes, this.limits);
    return { width: img.width, height: img.height, ...(keepRgb ? { rgb: img.rgb } : {}), frame: { layout: 'rgb', pixels: img.rgb, width: img.width, height: img.height } };
  }
}
