/**
 * Reads what a JPEG's header says without decoding it: size, EXIF orientation, coding process,
 * sample precision and colour components. The GPU path applies the decode limits from this alone and
 * sends the file's bytes to nvJPEG; whatever the GPU cannot decode goes to sharp instead. The scan data
 * is not read here: the device's decoder checks that the file ends where its scan does (a search over
 * every byte, which cost the JS thread a sixth of its time at GPU rates) and refuses it otherwise.
 */
export interface JpegHeader {
  /** Size as stored in the file (before EXIF orientation). */
  storedWidth: number;
  storedHeight: number;
  /** Size once the EXIF orientation is applied (what detections are measured in). */
  width: number;
  height: number;
  /** EXIF orientation 1..8 (1 when absent or out of range, as libvips treats it). */
  orientation: number;
  /** SOF marker: 0xc0 baseline, 0xc1 extended, 0xc2 progressive, others lossless/arithmetic/hierarchical. */
  sof: number;
  progressive: boolean;
  /** Bits per sample (8, or 12 for extended JPEGs). */
  precision: number;
  /** 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK. */
  components: number;
}

const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** EXIF orientation from an APP1 payload (after the 'Exif\0\0' tag), or 1. */
function exifOrientation(b: Buffer, start: number, end: number): number {
  if (end - start < 8) return 1;
  const little = b[start] === 0x49 && b[start + 1] === 0x49;
  if (!little && !(b[start] === 0x4d && b[start + 1] === 0x4d)) return 1;
  const u16 = (o: number) => (little ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (little ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const ifd = start + u32(start + 4);
  if (ifd + 2 > end) return 1;
  const entries = u16(ifd);
  for (let i = 0; i < entries; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > end) return 1;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * The header of a JPEG, or undefined when the bytes are not a JPEG whose header parses (the caller then
 * hands the file to sharp, whose error code is the answer).
 */
export function readJpegHeader(bytes: Buffer): JpegHeader | undefined {
  if (!isJpeg(bytes)) return undefined;
  let orientation = 1;
  let frame: Pick<JpegHeader, 'sof' | 'precision' | 'storedWidth' | 'storedHeight' | 'components'> | undefined;
  let pos = 2;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) return undefined;
    const marker = bytes[pos + 1]!;
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2;
      continue;
    }
    const length = bytes.readUInt16BE(pos + 2);
    const body = pos + 4;
    const next = pos + 2 + length;
    if (length < 2 || next > bytes.length) return undefined;
    if (marker === 0xe1 && length >= 8 && bytes.toString('latin1', body, body + 6) === 'Exif\0\0' && orientation === 1)
      orientation = exifOrientation(bytes, body + 6, next);
    else if (SOF_MARKERS.has(marker) && !frame) {
      if (length < 8) return undefined;
      frame = {
        sof: marker,
        precision: bytes[body]!,
        storedHeight: bytes.readUInt16BE(body + 1),
        storedWidth: bytes.readUInt16BE(body + 3),
        components: bytes[body + 5]!,
      };
    } else if (marker === 0xda) {
      if (!frame) return undefined;
      const swapped = orientation >= 5;
      return {
        ...frame,
        orientation,
        width: swapped ? frame.storedHeight : frame.storedWidth,
        height: swapped ? frame.storedWidth : frame.storedHeight,
        progressive: frame.sof === 0xc2 || frame.sof === 0xc6 || frame.sof === 0xca || frame.sof === 0xce,
      };
    } else if (marker === 0xd9) return undefined;
    pos = next;
  }
  return undefined;
}

/**
 * Whether nvJPEG's batched decoder takes this file's coding: 8-bit baseline or extended Huffman, grey or
 * three components. Progressive, 12-bit and CMYK/YCCK files go to sharp; a truncated or damaged one is
 * refused by the device's decoder and comes back to sharp from there.
 */
export function gpuDecodable(h: JpegHeader): boolean {
  return (h.sof === 0xc0 || h.sof === 0xc1) && h.precision === 8 && (h.components === 1 || h.components === 3);
}
