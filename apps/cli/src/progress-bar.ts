import type { Progress } from '@detq/pipeline';

/** A one-line progress bar on a TTY (done/total, img/s, ETA), redrawn at most 10 times a second. */
export class ProgressBar {
  private last = 0;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(p: Progress, force = false): void {
    if (!this.stream.isTTY) return;
    const now = Date.now();
    if (!force && p.done !== p.total && now - this.last < 100) return;
    this.last = now;
    const rate = p.elapsedMs > 0 ? (p.done * 1000) / p.elapsedMs : 0;
    const total = p.total ?? 0;
    const width = 30;
    const filled = total ? Math.round((p.done / total) * width) : 0;
    const eta = total && rate ? Math.max(0, (total - p.done) / rate) : undefined;
    const line =
      `${total ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : ''}${p.done}/${p.total ?? '?'} ` +
      `${rate.toFixed(1)} img/s` +
      (eta !== undefined ? ` ETA ${formatSeconds(eta)}` : '') +
      (p.errors ? ` ${p.errors} errors` : '');
    this.stream.write(`\r\x1b[2K${line}`);
  }

  done(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

export function formatSeconds(s: number): string {
  const m = Math.floor(s / 60);
  return m ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}
