import { mkdtemp, mkdir, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { EXIT_CODES } from '@detq/core';
import { main } from '@detq/cli';
import { cocoImageNames, COCO_IMAGES, ONNX_DYN, ONNX_INT8_320, TORCHSCRIPT } from './gpu-fixtures';

// `detq verify` with the torch engine standing in for TensorRT: the same gate code
// `detq build-engine --verify` runs (TensorRT is installable on none of our machines). The reference
// runs on onnxruntime-cpu, whose Linux binaries device-pack.sh carries to the GPU machine.
const detq = (...args: string[]) => main(['node', 'detq', ...args]);

let images: string;
beforeAll(async () => {
  images = join(await mkdtemp(join(tmpdir(), 'detq-gpu-verify-')), 'images');
  await mkdir(images);
  for (const name of cocoImageNames(8)) await copyFile(join(COCO_IMAGES, name), join(images, name));
});
afterEach(() => vi.restoreAllMocks());

function capture(stream: NodeJS.WriteStream): () => string {
  const chunks: string[] = [];
  const write = stream.write.bind(stream);
  vi.spyOn(stream, 'write').mockImplementation((c: string | Uint8Array) => (chunks.push(String(c)), write(c)));
  return () => chunks.join('');
}

describe('detq verify --engine torch', () => {
  test('passes the TorchScript against yolo11n-dyn.onnx (exit 0)', async () => {
    const out = capture(process.stdout);
    expect(await detq('verify', '--engine', 'torch', '--model', TORCHSCRIPT, '--reference', ONNX_DYN, '--images', images, '--json')).toBe(EXIT_CODES.OK);
    const figures = JSON.parse(out().slice(out().indexOf('{')));
    expect(figures).toMatchObject({ passed: true, images: 8, reasons: [] });
    expect(figures.matchedFraction).toBeGreaterThanOrEqual(0.97);
  });

  test('refuses it against a different reference model, yolo11n_int8_320.onnx (exit 3)', async () => {
    const out = capture(process.stdout);
    const err = capture(process.stderr);
    expect(await detq('verify', '--engine', 'torch', '--model', TORCHSCRIPT, '--reference', ONNX_INT8_320, '--images', images)).toBe(EXIT_CODES.BAD_MODEL);
    expect(out()).toMatch(/parity REFUSED on 8 images: \d+\/\d+ reference boxes matched at IoU >= 0\.9/);
    expect(err()).toMatch(/refused by the parity gate against .*yolo11n_int8_320\.onnx: .* at least 97 % needed/);
  });
});
