import sharp from 'sharp';
import type { ImageRecord } from '@detq/core';

// A fixed palette so a class keeps its colour across images.
const PALETTE = ['#FF3838', '#FF9D97', '#FF701F', '#FFB21D', '#CFD231', '#48F90A', '#92CC17', '#3DDB86', '#1A9334', '#00D4BB', '#2C99A8', '#00C2FF', '#344593', '#6473FF', '#0018EC', '#8438FF', '#520085', '#CB38FF', '#FF95C8', '#FF37C7'];

const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * Draws a record's boxes and labels on its image and encodes a JPEG. The overlay is an SVG we generate
 * ourselves (class names escaped), never one from the input.
 */
export async function renderPreview(rgb: Uint8Array, record: ImageRecord): Promise<Buffer> {
  const { width, height } = record;
  const stroke = Math.max(2, Math.round(Math.max(width, height) / 400));
  const font = Math.max(12, Math.round(Math.max(width, height) / 60));
  const shapes = record.detections.map((d) => {
    const [x1, y1, x2, y2] = d.box;
    const colour = PALETTE[d.class_id % PALETTE.length]!;
    const label = `${escapeXml(d.class_name)} ${d.confidence.toFixed(2)}`;
    // The label sits on a filled tab above the box (inside it when the box touches the top edge).
    const tabH = font + 4;
    const tabY = y1 >= tabH ? y1 - tabH : y1;
    const tabW = Math.round(label.length * font * 0.6) + 6;
    return (
      `<rect x="${x1}" y="${y1}" width="${x2 - x1}" height="${y2 - y1}" fill="none" stroke="${colour}" stroke-width="${stroke}"/>` +
      `<rect x="${x1}" y="${tabY}" width="${tabW}" height="${tabH}" fill="${colour}"/>` +
      `<text x="${x1 + 3}" y="${tabY + font}" font-family="DejaVu Sans, sans-serif" font-size="${font}" fill="#fff">${label}</text>`
    );
  });
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`);
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .composite([{ input: svg, top: 0, left: 0 }])
    .jpeg({ quality: 85 })
    .toBuffer();
}
