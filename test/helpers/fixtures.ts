import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { sharedDir } from '@detq/core';

export const SHARED = sharedDir();
export const COCO_IMAGES = join(SHARED, 'datasets/coco128/images/train2017');
export const COCO_LABELS = join(SHARED, 'datasets/coco128/labels/train2017');
export const SAMPLES = join(SHARED, 'datasets/samples/images');
export const MODEL_DYN = join(SHARED, 'models/yolo11n-dyn.onnx');
export const MODEL_STATIC = join(SHARED, 'models/yolo11n.onnx');
export const MODEL_INT8_320 = join(SHARED, 'models/yolo11n_int8_320.onnx');

export function cocoImageNames(count = Infinity): string[] {
  return readdirSync(COCO_IMAGES)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .slice(0, count);
}

export function tempDir(prefix = 'detq-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4); // libvips rejects the IHDR before the CRC matters
    return Buffer.concat([len, Buffer.from(type, 'latin1'), data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(16))), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * Files detq must refuse one by one, keyed by file name, each with the error code it must get.
 * Built from a real coco128 JPEG so truncation and corruption hit real entropy-coded data.
 */
export function badImages(): Record<string, { bytes: Buffer; code: string }> {
  const jpg = readFileSync(join(COCO_IMAGES, cocoImageNames(1)[0]!));
  const corrupt = Buffer.from(jpg);
  for (let i = 2000; i < corrupt.length - 2000; i += 97) corrupt[i] = i % 2 ? 0xff : 0xd9;
  return {
    'empty.jpg': { bytes: Buffer.alloc(0), code: 'EMPTY_FILE' },
    'truncated.jpg': { bytes: jpg.subarray(0, Math.floor(jpg.length / 2)), code: 'TRUNCATED' },
    'header-only.jpg': { bytes: jpg.subarray(0, 600), code: 'TRUNCATED' },
    'corrupt.jpg': { bytes: corrupt, code: 'CORRUPT' },
    'notes.jpg': { bytes: Buffer.from('these are notes, not a photo\n'.repeat(20)), code: 'NOT_AN_IMAGE' },
    'random.png': { bytes: randomBytes(4096), code: 'NOT_AN_IMAGE' },
    'drawing.svg': { bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'), code: 'UNSUPPORTED_FORMAT' },
    'scan.pdf': { bytes: Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n'), code: 'UNSUPPORTED_FORMAT' },
    'bomb.png': { bytes: pngHeader(100_000, 100_000), code: 'TOO_MANY_PIXELS' },
  };
}
