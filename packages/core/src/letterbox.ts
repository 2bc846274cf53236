/**
 * Letterbox geometry exactly as Ultralytics' LetterBox(auto=False, scaleup=True, center=True):
 * keep the aspect ratio, round the resized size, split the padding with the -0.1/+0.1 rounding trick.
 * The CPU (sharp) path, the CUDA kernel and box back-mapping all use this one definition.
 */
export interface Letterbox {
  /** Source (oriented) image size. */
  srcWidth: number;
  srcHeight: number;
  /** Network input size. */
  dstWidth: number;
  dstHeight: number;
  /** Scale applied to the source. */
  gain: number;
  /** Size of the resized image inside the canvas. */
  resizedWidth: number;
  resizedHeight: number;
  /** Padding on the left and top, in input pixels. */
  left: number;
  top: number;
}

export const LETTERBOX_PAD = 114;

// Python's round() rounds half to even; Ultralytics relies on it for padding.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // `+ 0` turns -0 (Math.round(-0.1)) into 0.
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r) + 0;
}

export function computeLetterbox(srcWidth: number, srcHeight: number, dstWidth: number, dstHeight: number): Letterbox {
  const gain = Math.min(dstHeight / srcHeight, dstWidth / srcWidth);
  const resizedWidth = roundHalfEven(srcWidth * gain);
  const resizedHeight = roundHalfEven(srcHeight * gain);
  const dw = (dstWidth - resizedWidth) / 2;
  const dh = (dstHeight - resizedHeight) / 2;
  return {
    srcWidth,
    srcHeight,
    dstWidth,
    dstHeight,
    gain,
    resizedWidth,
    resizedHeight,
    left: roundHalfEven(dw - 0.1),
    top: roundHalfEven(dh - 0.1),
  };
}
