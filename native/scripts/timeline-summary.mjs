#!/usr/bin/env node
// Summarises DETQ_DEBUG's per-batch timeline lines (native/src/core/batch_timeline.h) from a labelling
// run's stderr, per device: medians per batch of each host and GPU step, and how much of the run's span
// the GPU spent running networks, decoding JPEGs (from a decode's submission to its end), both at once,
// or neither. Usage: timeline-summary.mjs debug.log. Exits 1 when there is nothing to summarise.
import { readFileSync } from 'node:fs';

const marks = (text) => Object.fromEntries(text.trim().split(/\s+/).filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
const devices = new Map();
for (const line of readFileSync(process.argv[2] ?? '/dev/stdin', 'utf8').split('\n')) {
  const m = /timeline context=(\d+) frames=(\d+) device=(\d+) host (.*) \| gpu (.*)$/.exec(line);
  if (!m) continue;
  const batch = { context: Number(m[1]), frames: Number(m[2]), host: marks(m[4]), gpu: marks(m[5]) };
  const name = m[3];
  devices.set(name, [...(devices.get(name) ?? []), batch]);
}
const NEEDED = ['decode', 'decoded', 'staged', 'compute', 'net-end', 'done'];
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
// Union of intervals, in ms.
const covered = (intervals) => {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of sorted) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
};

let summarised = 0;
for (const [device, batches] of devices) {
  // The first tenth is start-up (first runs of each batch size, captures, window fill); a batch missing a
  // GPU mark (one that could not be read) is left out.
  const steady = batches.slice(Math.floor(batches.length / 10)).filter((b) => NEEDED.every((k) => Number.isFinite(b.gpu[k])));
  if (steady.length === 0) continue;
  summarised++;
  const step = (pick) => median(steady.map(pick)).toFixed(2);
  const start = steady.reduce((t, b) => Math.min(t, b.gpu.decode), Infinity);
  const end = steady.reduce((t, b) => Math.max(t, b.gpu.done), -Infinity);
  const span = end - start;
  const frames = steady.reduce((n, b) => n + b.frames, 0);
  const net = steady.map((b) => [b.gpu.compute, b.gpu['net-end']]);
  const decode = steady.map((b) => [b.gpu.decode, b.gpu.decoded]);
  const netMs = covered(net);
  const decodeMs = covered(decode);
  const eitherMs = covered([...net, ...decode]);
  const pct = (x) => `${((100 * x) / span).toFixed(1)} %`;
  console.log(`device ${device}: ${steady.length} batches (of ${batches.length}), ${new Set(steady.map((b) => b.context)).size} contexts, ${frames} frames in ${span.toFixed(1)} ms on the GPU: ${((1000 * frames) / span).toFixed(0)} img/s`);
  console.log(`medians per batch, ms: host launch ${step((b) => b.host.queued - b.host.launch)} (JPEG checks and staging set-up ${step((b) => b.host['decode-call'] - b.host.launch)}), decode call ${step((b) => b.host['decode-return'] - b.host['decode-call'])}, collect wait ${step((b) => b.host.collected - b.host.collect)}`);
  console.log(`  gpu: decode ${step((b) => b.gpu.decoded - b.gpu.decode)}, upload ${step((b) => b.gpu.staged - b.gpu.decoded)}, staged -> compute ${step((b) => b.gpu.compute - b.gpu.staged)}, letterbox + network ${step((b) => b.gpu['net-end'] - b.gpu.compute)}, post + copy back ${step((b) => b.gpu.done - b.gpu['net-end'])}`);
  console.log(`  decode call start on host -> decode start on gpu ${step((b) => b.gpu.decode - b.host['decode-call'])}, decode call return -> gpu decode end ${step((b) => b.gpu.decoded - b.host['decode-return'])}`);
  console.log(`share of the span: networks ${pct(netMs)}, JPEG decodes ${pct(decodeMs)}, both ${pct(netMs + decodeMs - eitherMs)}, neither ${pct(span - eitherMs)}`);
}
if (summarised === 0) {
  console.log('no complete timeline lines (run with DETQ_DEBUG=1)');
  process.exit(1);
}
