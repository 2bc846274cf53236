import { api } from './api';
import type { WorkerView } from './types';
import { ErrorNote, html, usePoll } from './ui';

/** Live workers, from the stats each worker reports to Redis every few seconds. */
export function WorkersPage() {
  const { data, error } = usePoll(() => api<{ workers: WorkerView[] }>('/v1/workers'), 5_000);
  const now = Date.now();
  return html`<div>
    <h1>Workers</h1>
    <${ErrorNote} error=${error} />
    ${data &&
    (data.workers.length === 0
      ? html`<p class="muted">No worker has reported in the last minute.</p>`
      : html`<div class="table-wrap"><table class="workers"><thead><tr><th>Worker</th><th>Engine</th><th>Device</th><th>Batch fill</th><th>img/s</th><th>Active chunks</th><th class="wide">Model</th><th class="wide">Frames</th><th class="wide">Reported</th></tr></thead><tbody>
        ${data.workers.map(
          (w) => html`<tr data-worker=${w.id}><td class="mono">${w.id}</td><td>${w.engine ?? '—'}</td><td>${w.device ?? '—'}</td>
            <td><meter min="0" max="1" value=${w.fill} aria-label="batch fill"></meter> ${Math.round(w.fill * 100)}%</td>
            <td>${w.imagesPerSecond ?? '—'}</td><td>${w.activeChunks ?? '—'}</td><td class="wide">${w.model ?? '—'}</td><td class="wide">${w.frames}</td>
            <td class="wide">${Math.max(0, Math.round((now - w.at) / 1000))} s ago</td></tr>`,
        )}</tbody></table></div>`)}
  </div>`;
}
