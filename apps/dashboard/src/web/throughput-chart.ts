import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { html } from './ui';

export interface Throughput {
  startedAt: number | null;
  points: { at: number; images: number }[];
}

/** Images per second in up to 30 equal time buckets, from the finish times of the job's chunks. */
export function rateSeries(t: Throughput): [number[], number[]] {
  const first = t.startedAt ?? t.points[0]?.at;
  const last = t.points.at(-1)?.at;
  if (first === undefined || last === undefined || last <= first) return [[], []];
  const buckets = Math.min(30, t.points.length);
  const width = (last - first) / buckets;
  const images = new Array<number>(buckets).fill(0);
  for (const p of t.points) images[Math.min(buckets - 1, Math.floor((p.at - first) / width))]! += p.images;
  return [images.map((_, i) => (first + (i + 1) * width) / 1000), images.map((n) => Number((n / (width / 1000)).toFixed(2)))];
}

export function ThroughputChart({ data }: { data: Throughput }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const series = rateSeries(data);
  useEffect(() => {
    const el = box.current!;
    plot.current = new uPlot(
      {
        width: el.clientWidth,
        height: 180,
        series: [{}, { label: 'img/s', stroke: '#2563eb', fill: 'rgba(37,99,235,0.12)', width: 2, points: { show: true } }],
        axes: [{}, { label: 'img/s', size: 50 }],
        legend: { show: false },
      },
      series,
      el,
    );
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
    };
  }, []);
  useEffect(() => plot.current?.setData(series), [JSON.stringify(series)]);
  return html`<div>
    <div ref=${box} class="chart" role="img" aria-label=${`images per second over time, ${series[0].length} points`}></div>
    ${series[0].length === 0 && html`<p class="muted small">No chunk has finished yet.</p>`}
  </div>`;
}
