import sharp from 'sharp';
import { computeLetterbox, ImageError, LETTERBOX_PAD, type Letterbox } from '@detq/core';
import { gpuDecodable, readJpegHeader, type JpegHeader } from './jpeg-header';
import { letterboxRgb } from './letterbox-frame';

// libvips' kernel for the letterbox resize (after shrink-on-load); see decodeLetterboxed.
const RESIZE_KERNEL = 'linear';

export interface DecodeLimits {
  /** Largest accepted width x height (checked from the header before decoding). */
  maxPixels: number;
  /** Largest accepted file size in bytes. */
  maxBytes: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxPixels: 100_000_000, maxBytes: 256 * 1024 * 1024 };

export interface DecodedImage {
  /** uint8 RGB, HWC, EXIF orientation applied. */
  rgb: Uint8Array;
  width: number;
  height: number;
}

// Images are decoded many at a time (one per libuv thread), so one libvips thread per image avoids
// oversubscribing the cores the inference engine needs.
sharp.concurrency(1);

const ACCEPTED = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif']);

// Formats we recognise by their first bytes but refuse: SVG would be rendered by librsvg (fetches, entity
// expansion), PDF and HEIC are not photos we label. Refusing them up front means they are never parsed.
function refusedFormat(bytes: Buffer): string | undefined {
  const head = bytes.subarray(0, 512).toString('latin1').trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'SVG';
  if (head.startsWith('%pdf')) return 'PDF';
  if (bytes.length >= 12 && bytes.toString('latin1', 4, 8) === 'ftyp') {
    const brand = bytes.toString('latin1', 8, 12);
    if (!brand.startsWith('avi')) return `ISO-BMFF (${brand.trim()})`;
  }
  if (head.startsWith('bm')) return 'BMP';
  return undefined;
}

// Whether the file ends where its format says it must: a JPEG with its EOI marker, a PNG with its IEND
// chunk, a GIF with its trailer. Decided from the bytes, because libvips keeps one error buffer for all
// threads, so a failed decode's message can carry text from another image failing at the same time.
function endsEarly(bytes: Buffer): boolean {
  const tail = bytes.subarray(Math.max(0, bytes.length - 64));
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return tail.indexOf(Buffer.from([0xff, 0xd9])) < 0;
  if (bytes.subarray(1, 4).toString('latin1') === 'PNG') return tail.indexOf('IEND', 0, 'latin1') < 0;
  if (bytes.subarray(0, 3).toString('latin1') === 'GIF') return tail[tail.length - 1] !== 0x3b;
  return false;
}

/** The ImageError for a libvips failure. */
function classifyDecodeError(err: unknown, bytes: Buffer): ImageError {
  const message = err instanceof Error ? err.message : String(err);
  const firstLine = message.split('\n')[0];
  if (/unsupported image format|input buffer contains unsupported/i.test(message))
    return new ImageError('NOT_AN_IMAGE', 'not a recognised image format', { cause: err });
  if (endsEarly(bytes)) return new ImageError('TRUNCATED', `image data ends early: ${firstLine}`, { cause: err });
  return new ImageError('CORRUPT', `image data is damaged: ${firstLine}`, { cause: err });
}

// failOn 'warning' makes damaged JPEG data an error instead of silently labelling garbage pixels.
// limitInputPixels: false because we check the limit ourselves, with a clearer message.
// ignoreIcc: the stored values, as Ultralytics' cv2.imread and nvJPEG read them; converting an embedded
// profile to sRGB moved coco128's mAP50 from 0.661 to 0.664 and cost each such image an lcms transform.
const SHARP_OPTIONS = { failOn: 'warning', limitInputPixels: false, ignoreIcc: true } as const;

// The checks every file meets before any parsing, on the CPU and the GPU path alike.
function checkFile(bytes: Buffer, limits: DecodeLimits): void {
  if (bytes.length === 0) throw new ImageError('EMPTY_FILE', 'the file is empty (0 bytes)');
  if (bytes.length > limits.maxBytes)
    throw new ImageError('FILE_TOO_LARGE', `the file has ${bytes.length} bytes, above the limit of ${limits.maxBytes}`);
  const refused = refusedFormat(bytes);
  if (refused) throw new ImageError('UNSUPPORTED_FORMAT', `${refused} files are not accepted`);
}

function checkPixels(w: number, h: number, limits: DecodeLimits): void {
  if (w * h > limits.maxPixels)
    throw new ImageError('TOO_MANY_PIXELS', `the image is ${w}x${h} (${w * h} pixels), above the limit of ${limits.maxPixels}`);
}

/**
 * For engines that decode JPEGs on the device: the header of a JPEG the GPU can take, after the same
 * limits and error codes as decodeImage, read without decoding. Undefined for every other file (not a
 * JPEG, progressive, CMYK, 12-bit, damaged): decodeImage then gives its result or its error code.
 */
export function inspectForDeviceDecode(bytes: Buffer, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): JpegHeader | undefined {
  checkFile(bytes, limits);
  const header = readJpegHeader(bytes);
  if (!header || header.storedWidth <= 0 || header.storedHeight <= 0 || !gpuDecodable(header)) return undefined;
  checkPixels(header.storedWidth, header.storedHeight, limits);
  return header;
}

/**
 * Checks an encoded image before any pixel is decoded: size, refused formats, and the header's
 * dimensions against the pixel limit. Returns the oriented (EXIF-applied) size.
 */
async function inspect(bytes: Buffer, limits: DecodeLimits): Promise<{ width: number; height: number }> {
  checkFile(bytes, limits);
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes, SHARP_OPTIONS).metadata();
  } catch (err) {
    throw classifyDecodeError(err, bytes);
  }
  if (!meta.format || !ACCEPTED.has(meta.format))
    throw new ImageError('UNSUPPORTED_FORMAT', `${meta.format ?? 'unknown'} images are not accepted`);
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (w <= 0 || h <= 0) throw new ImageError('CORRUPT', `the header declares an empty image (${w}x${h})`);
  checkPixels(w, h, limits);
  return meta.autoOrient ?? { width: w, height: h };
}

/**
 * Decodes an encoded image to oriented uint8 RGB. Every failure is an ImageError with a stable code.
 * The header is read first so an image declaring huge dimensions is refused without being decoded.
 */
export async function decodeImage(bytes: Buffer, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Promise<DecodedImage> {
  await inspect(bytes, limits);
  try {
    const { data, info } = await sharp(bytes, SHARP_OPTIONS)
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (err) {
    throw classifyDecodeError(err, bytes);
  }
}

export interface LetterboxedDecode {
  /** uint8 RGB HWC, dstWidth x dstHeight, padded with LETTERBOX_PAD. */
  pixels: Uint8Array;
  letterbox: Letterbox;
}

/**
 * Decodes straight into the engine's letterboxed input: libvips shrinks on load (a 12 MP JPEG is
 * decoded at 1/2, 1/4 or 1/8 scale), resizes to the letterbox geometry of computeLetterbox and pads,
 * all in its own threads, so a big photo never exists at full size as JS pixels. Images that are
 * enlarged instead take the JS INTER_LINEAR path.
 */
export async function decodeLetterboxed(
  bytes: Buffer,
  dstWidth: number,
  dstHeight: number,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): Promise<LetterboxedDecode> {
  const { width, height } = await inspect(bytes, limits);
  const lb = computeLetterbox(width, height, dstWidth, dstHeight);
  // Enlarging (small images, cheap at any speed): OpenCV's INTER_LINEAR in JS, exactly as Ultralytics and
  // the GPU letterbox kernel do it; libvips' linear kernel aligns pixels differently and moves boxes.
  if (lb.gain > 1) {
    const img = await decodeImage(bytes, limits);
    return letterboxRgb(img.rgb, img.width, img.height, dstWidth, dstHeight);
  }
  try {
    let image = sharp(bytes, SHARP_OPTIONS).rotate();
    if (lb.resizedWidth !== width || lb.resizedHeight !== height)
      image = image.resize(lb.resizedWidth, lb.resizedHeight, { fit: 'fill', kernel: RESIZE_KERNEL });
    const { data, info } = await image
      .removeAlpha()
      .toColourspace('srgb')
      .extend({
        top: lb.top,
        bottom: dstHeight - lb.resizedHeight - lb.top,
        left: lb.left,
        right: dstWidth - lb.resizedWidth - lb.left,
        background: { r: LETTERBOX_PAD, g: LETTERBOX_PAD, b: LETTERBOX_PAD },
      })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== dstWidth || info.height !== dstHeight)
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${dstWidth}x${dstHeight}x3`);
    return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.length), letterbox: lb };
  } catch (err) {
    throw classifyDecodeError(err, bytes);
  }
}
