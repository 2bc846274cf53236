#!/usr/bin/env node
// Engine-only A/B of the torch backend's convolution layout (channels-last vs NCHW) at FP32 and FP16,
// straight on the addon: `node native/scripts/bench-layout.mjs <model.torchscript> [batch]`.
import { createRequire } from 'node:module';

const addon = createRequire(import.meta.url)('../build/Release/detq_native.node');
const [model, batchArg = '32'] = process.argv.slice(2);
const batch = Number(batchArg);
const params = { conf: 0.25, iou: 0.7, maxDet: 300, agnosticNms: false, multiLabel: false };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const half of [false, true])
  for (const channelsLast of [false, true]) {
    const m = await addon.loadModel({ backend: 'torch', path: model, half, channelsLast, maxBatch: batch });
    const ctx = m.createContext();
    await ctx.benchmark(batch, 10, 640, 480, params);
    const ms = median(Array.from(await ctx.benchmark(batch, 100, 640, 480, params)));
    console.log(`torch ${half ? 'fp16' : 'fp32'} ${channelsLast ? 'channels-last' : 'nchw        '} batch ${batch}: ${ms.toFixed(2)} ms, ${((batch * 1000) / ms).toFixed(0)} img/s`);
    await ctx.dispose();
  }
