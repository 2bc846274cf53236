import sharp from 'sharp';
import { classColour, type ImageRecord } from '@detq/core';

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
    const colour = classColour(d.class_id);
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
