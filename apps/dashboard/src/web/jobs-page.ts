import { useEffect, useState } from 'preact/hooks';
import { jobStatusSchema } from '@detq/core/job-spec';
import { api, followEvents } from './api';
import type { JobView } from './types';
import { Confirm, ErrorNote, fmtDate, fmtDuration, html, Progress, StatusBadge, TERMINAL, usePoll } from './ui';

const MAX_STREAMS = 3;

/** Jobs newest first, filtered by status; running jobs follow their SSE stream. */
export function JobsPage() {
  const [status, setStatus] = useState('');
  const [live, setLive] = useState<Record<string, JobView>>({});
  const [cancelling, setCancelling] = useState<JobView>();
  const [error, setError] = useState<unknown>();
  const list = usePoll(() => api<{ jobs: JobView[] }>(`/v1/jobs?limit=50${status ? `&status=${status}` : ''}`), 5_000, [status]);
  const jobs = (list.data?.jobs ?? []).map((j) => live[j.id] ?? j);
  // A browser keeps at most 6 HTTP/1.1 connections per host: the newest few running jobs stream, the
  // others move with the list's own refresh.
  const active = jobs.filter((j) => !TERMINAL.includes(j.status)).slice(0, MAX_STREAMS).map((j) => j.id).join(',');

  useEffect(() => {
    const stop = new AbortController();
    for (const id of active ? active.split(',') : []) {
      followEvents<JobView>(`/v1/jobs/${id}/events`, (_e, view) => setLive((l) => ({ ...l, [id]: view })), stop.signal).catch(() => undefined);
    }
    return () => stop.abort();
  }, [active]);

  const cancel = async (job: JobView) => {
    try {
      await api(`/v1/jobs/${job.id}/cancel`, { method: 'POST' });
      list.reload();
    } catch (err) {
      setError(err);
    }
  };

  return html`<div>
    <div class="row between">
      <h1>Jobs</h1>
      <label>Status <select value=${status} onChange=${(e: Event) => setStatus((e.target as HTMLSelectElement).value)} name="status">
        <option value="">all</option>
        ${jobStatusSchema.options.map((s) => html`<option value=${s}>${s.replaceAll('_', ' ')}</option>`)}
      </select></label>
    </div>
    <${ErrorNote} error=${list.error ?? error} />
    ${list.data && jobs.length === 0 && html`<p class="muted">No jobs${status ? ` with status ${status.replaceAll('_', ' ')}` : ''}.</p>`}
    ${jobs.length > 0 &&
    html`<div class="table-wrap"><table class="jobs">
      <thead><tr><th>Job</th><th>Status</th><th>Progress</th><th class="wide">img/s</th><th class="wide">ETA</th><th class="wide">Created</th><th class="wide">Owner</th><th class="wide">Model</th><th><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${jobs.map(
        (j) => html`<tr data-job=${j.id}>
          <td><a href=${`#/jobs/${j.id}`} class="mono">${j.id}</a></td>
          <td><${StatusBadge} status=${j.status} /></td>
          <td><${Progress} value=${j.progress} label=${`progress of ${j.id}`} /> <span class="muted small">${j.counts.done}/${j.counts.total}${j.counts.failed ? `, ${j.counts.failed} failed` : ''}</span></td>
          <td class="wide">${j.imagesPerSecond}</td>
          <td class="wide">${TERMINAL.includes(j.status) ? '—' : fmtDuration(j.eta)}</td>
          <td class="wide">${fmtDate(j.createdAt)}</td>
          <td class="wide">${j.owner ?? '—'}</td>
          <td class="wide">${j.model ?? 'default'}</td>
          <td>${!TERMINAL.includes(j.status) && html`<button type="button" class="danger small" onClick=${() => setCancelling(j)}>Cancel</button>`}</td>
        </tr>`,
      )}</tbody>
    </table></div>`}
    ${cancelling && html`<${Confirm} text=${`Cancel job ${cancelling.id}? Images not yet labelled will not be.`} confirm="Cancel job" onConfirm=${() => void cancel(cancelling)} onClose=${() => setCancelling(undefined)} />`}
  </div>`;
}
