// A short run of detq's own kernels through nvJPEG (no network): JPEG files decoded on the device, then
// letterboxed with their EXIF orientation, then YOLO decode + NMS on a synthetic head output. Used by
// memcheck.test.ts under racecheck, which cannot follow a whole LibTorch/cuDNN run.
// Usage: node kernels-run.mjs <addon.node> <jpeg>...
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [addonPath, ...files] = process.argv.slice(2);
const addon = createRequire(import.meta.url)(addonPath);
addon.setLogger((level, message) => process.stderr.write(`detq: native ${level}: ${message}\n`));
const kernels = new addon.Kernels(0);
// Sizes from the JPEG header: SOF0 height/width of the main image.
const frames = files.map((f, i) => {
  const jpeg = readFileSync(f);
  const sof = jpeg.lastIndexOf(Buffer.from([0xff, 0xc0])); // the main image follows any EXIF thumbnail
  const height = jpeg.readUInt16BE(sof + 5);
  const width = jpeg.readUInt16BE(sof + 7);
  const gain = Math.min(640 / width, 640 / height);
  const rw = Math.round(width * gain);
  const rh = Math.round(height * gain);
  return { jpeg, width, height, orientation: 1 + (i % 4), resizedWidth: rw, resizedHeight: rh, left: Math.floor((640 - rw) / 2), top: Math.floor((640 - rh) / 2), gain };
});
const input = await kernels.letterbox(frames, 640, 640, true);
const anchors = 8400;
const raw = new Float32Array(frames.length * 84 * anchors).map((_, i) => ((i * 2654435761) % 1000) / 1000);
const dets = await kernels.postprocess(raw, frames.length, 84, anchors, frames.map((f) => ({ ...f, srcWidth: f.width, srcHeight: f.height })), { conf: 0.5, iou: 0.7, maxDet: 300, agnosticNms: false, multiLabel: false });
await kernels.dispose();
console.log(`kernels run: ${frames.length} JPEGs decoded and letterboxed (${input.length} values), ${dets.reduce((n, d) => n + d.count, 0)} boxes`);
