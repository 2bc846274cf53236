#!/usr/bin/env node
// Summarises DETQ_DEBUG's per-batch timeline lines (native/src/core/batch_timeline.h) from a labelling
// run's stderr: medians per batch of each host and GPU step, and how much of the run's span the GPU spent
// running networks, decoding JPEGs, both at once, or neither. Usage: timeline-summary.mjs debug.log
import { readFileSync } from 'node:fs';

const lines = readFileSync(process.argv[2] ?? '/dev/stdin', 'utf8').split('\n');
const batches = [];
for (const line of lines) {
  const m = /timeline context=(\d+) frames=(\d+) host (.*) \| gpu (.*)$/.exec(line);
  if (!m) continue;
  const marks = (text) => Object.fromEntries(text.trim().split(/\s+/).filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
  batches.push({ context: Number(m[1]), frames: Number(m[2]), host: marks(m[3]), gpu: marks(m[4]) });
}
if (batches.length === 0) {
  console.log('no timeline lines (run with DETQ_DEBUG=1)');
  process.exit(1);
}
// The first tenth is start-up (first runs of each batch size, captures, window fill).
const steady = batches.slice(Math.floor(batches.length / 10));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const step = (pick) => median(steady.map(pick)).toFixed(2);
// Union of intervals, in ms.
const covered = (intervals) => {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0, end = -Infinity;
  for (const [a, b] of sorted) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
};
const start = Math.min(...steady.map((b) => b.gpu.decode));
const end = Math.max(...steady.map((b) => b.gpu.done));
const span = end - start;
const frames = steady.reduce((n, b) => n + b.frames, 0);
const net = steady.map((b) => [b.gpu.compute, b.gpu['net-end']]);
const decode = steady.map((b) => [b.gpu.decode, b.gpu.decoded]);
const netMs = covered(net), decodeMs = covered(decode), eitherMs = covered([...net, ...decode]);
const pct = (x) => `${((100 * x) / span).toFixed(1)} %`;
console.log(`${steady.length} batches (of ${batches.length}), ${new Set(steady.map((b) => b.context)).size} contexts, ${frames} frames in ${span.toFixed(1)} ms on the GPU: ${((1000 * frames) / span).toFixed(0)} img/s`);
console.log(`medians per batch, ms: host launch ${step((b) => b.host.queued - b.host.launch)}, decode call ${step((b) => b.host['decode-return'] - b.host['decode-call'])}, collect wait ${step((b) => b.host.collected - b.host.collect)}`);
console.log(`  gpu: decode ${step((b) => b.gpu.decoded - b.gpu.decode)}, upload ${step((b) => b.gpu.staged - b.gpu.decoded)}, staged -> compute ${step((b) => b.gpu.compute - b.gpu.staged)}, letterbox + network ${step((b) => b.gpu['net-end'] - b.gpu.compute)}, post + copy back ${step((b) => b.gpu.done - b.gpu['net-end'])}`);
console.log(`  decode call start on host -> decode start on gpu ${step((b) => b.gpu.decode - b.host['decode-call'])}, decode call return -> gpu decode end ${step((b) => b.gpu.decoded - b.host['decode-return'])}`);
console.log(`share of the span: networks ${pct(netMs)}, JPEG decodes ${pct(decodeMs)}, both ${pct(netMs + decodeMs - eitherMs)}, neither ${pct(span - eitherMs)}`);
// nvJPEG's allocator calls per decode call (count/ms for device malloc, device free, pinned malloc, pinned free).
const allocs = lines.map((l) => /allocator calls\/ms [^:]*:((?: \d+\/[\d.]+){4})/.exec(l)).filter(Boolean).map((m) => m[1].trim().split(' ').map((x) => x.split('/').map(Number)));
if (allocs.length) {
  const names = ['device malloc', 'device free', 'pinned malloc', 'pinned free'];
  console.log(`nvJPEG allocator over ${allocs.length} decode calls: ${names.map((n, k) => `${n} ${allocs.reduce((s, a) => s + a[k][0], 0)} calls ${allocs.reduce((s, a) => s + a[k][1], 0).toFixed(1)} ms`).join(', ')}`);
}
