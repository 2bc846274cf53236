/**
 * uint8 RGB resize with OpenCV semantics, as Ultralytics applies them: INTER_AREA when shrinking,
 * INTER_LINEAR (half-pixel centres) when enlarging. Float32 maths rounded to nearest; the CUDA
 * letterbox kernel implements these same formulas so CPU and GPU agree to within one grey level.
 */
export function resizeRgb(src: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array {
  if (sw === dw && sh === dh) return src;
  return dw < sw && dh < sh ? resizeArea(src, sw, sh, dw, dh) : resizeLinear(src, sw, sh, dw, dh);
}

interface AxisTap {
  index: Int32Array;
  weight: Float32Array;
  start: Int32Array;
}

// For one axis, the source pixels each destination pixel covers and their overlap weights.
function areaTaps(srcLen: number, dstLen: number): AxisTap {
  const scale = srcLen / dstLen;
  const start = new Int32Array(dstLen + 1);
  const index: number[] = [];
  const weight: number[] = [];
  for (let d = 0; d < dstLen; d++) {
    start[d] = index.length;
    const f0 = d * scale;
    const f1 = Math.min(f0 + scale, srcLen);
    for (let s = Math.floor(f0); s < f1; s++) {
      const w = Math.min(s + 1, f1) - Math.max(s, f0);
      if (w > 1e-6) {
        index.push(s);
        weight.push(w / scale);
      }
    }
  }
  start[dstLen] = index.length;
  return { index: Int32Array.from(index), weight: Float32Array.from(weight), start };
}

function resizeArea(src: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array {
  const xs = areaTaps(sw, dw);
  const ys = areaTaps(sh, dh);
  const out = new Uint8Array(dw * dh * 3);
  const row = new Float32Array(dw * 3);
  for (let y = 0; y < dh; y++) {
    row.fill(0);
    for (let ty = ys.start[y]!; ty < ys.start[y + 1]!; ty++) {
      const srow = ys.index[ty]! * sw * 3;
      const wy = ys.weight[ty]!;
      for (let x = 0; x < dw; x++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let tx = xs.start[x]!; tx < xs.start[x + 1]!; tx++) {
          const p = srow + xs.index[tx]! * 3;
          const w = xs.weight[tx]!;
          r += src[p]! * w;
          g += src[p + 1]! * w;
          b += src[p + 2]! * w;
        }
        row[x * 3] = row[x * 3]! + r * wy;
        row[x * 3 + 1] = row[x * 3 + 1]! + g * wy;
        row[x * 3 + 2] = row[x * 3 + 2]! + b * wy;
      }
    }
    const o = y * dw * 3;
    for (let i = 0; i < dw * 3; i++) out[o + i] = Math.min(255, Math.round(row[i]!));
  }
  return out;
}

function resizeLinear(src: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array {
  const out = new Uint8Array(dw * dh * 3);
  const sx = sw / dw;
  const sy = sh / dh;
  // Horizontal taps are the same for every row: compute them once.
  const x0s = new Int32Array(dw);
  const x1s = new Int32Array(dw);
  const fxs = new Float32Array(dw);
  for (let x = 0; x < dw; x++) {
    const fx = Math.max((x + 0.5) * sx - 0.5, 0);
    const x0 = Math.min(Math.floor(fx), sw - 1);
    x0s[x] = x0 * 3;
    x1s[x] = Math.min(x0 + 1, sw - 1) * 3;
    fxs[x] = fx - x0;
  }
  for (let y = 0; y < dh; y++) {
    const fy = Math.max((y + 0.5) * sy - 0.5, 0);
    const y0 = Math.min(Math.floor(fy), sh - 1);
    const y1 = Math.min(y0 + 1, sh - 1);
    const wy = fy - y0;
    const r0 = y0 * sw * 3;
    const r1 = y1 * sw * 3;
    let o = y * dw * 3;
    for (let x = 0; x < dw; x++) {
      const a = x0s[x]!;
      const b = x1s[x]!;
      const wx = fxs[x]!;
      for (let c = 0; c < 3; c++) {
        const top = src[r0 + a + c]! + (src[r0 + b + c]! - src[r0 + a + c]!) * wx;
        const bot = src[r1 + a + c]! + (src[r1 + b + c]! - src[r1 + a + c]!) * wx;
        out[o++] = Math.round(top + (bot - top) * wy);
      }
    }
  }
  return out;
}
