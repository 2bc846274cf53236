import { useEffect, useState } from 'preact/hooks';
import { api, blobUrl, followEvents } from './api';
import { ThroughputChart, type Throughput } from './throughput-chart';
import type { JobDetail, JobView, RecordsPage } from './types';
import { Confirm, ErrorNote, fmtDate, fmtDuration, html, Progress, Section, StatusBadge, TERMINAL } from './ui';

/** One job: counts, live progress, throughput, errors by code, provenance and its output files. */
export function JobPage({ id }: { id: string }) {
  const [detail, setDetail] = useState<JobDetail>();
  const [view, setView] = useState<JobView>();
  const [throughput, setThroughput] = useState<Throughput>({ startedAt: null, points: [] });
  const [errors, setErrors] = useState<RecordsPage>();
  const [error, setError] = useState<unknown>();
  const [confirming, setConfirming] = useState(false);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    const stop = new AbortController();
    const load = async () => {
      const d = await api<JobDetail>(`/v1/jobs/${id}/detail`);
      setDetail(d);
      setView(d.job);
      setThroughput(await api<Throughput>(`/v1/jobs/${id}/throughput`));
      setErrors(await api<RecordsPage>(`/v1/jobs/${id}/records?errorsOnly=true&limit=200`));
      return d;
    };
    load()
      .then(async (d) => {
        if (TERMINAL.includes(d.job.status)) return;
        let lastChart = 0;
        await followEvents<JobView>(
          `/v1/jobs/${id}/events`,
          (_event, v) => {
            setView(v);
            if (Date.now() - lastChart > 2000) {
              lastChart = Date.now();
              void api<Throughput>(`/v1/jobs/${id}/throughput`).then(setThroughput, () => undefined);
            }
          },
          stop.signal,
        );
        if (!stop.signal.aborted) await load();
      })
      .catch((e: unknown) => stop.signal.aborted || setError(e));
    return () => stop.abort();
  }, [id, reload]);

  if (error) return html`<${ErrorNote} error=${error} />`;
  if (!detail || !view) return html`<p class="muted">Loading…</p>`;
  const { spec, summary } = detail;
  const ended = TERMINAL.includes(view.status);
  const files = summary ? [...summary.files, `${view.output.replace(/\/?$/, '/')}summary.json`] : [];
  const byCode = Object.entries(summary?.errorsByCode ?? errors?.errors ?? {});

  const download = async (uri: string) => {
    const a = document.createElement('a');
    a.href = await blobUrl(`/v1/jobs/${id}/file?uri=${encodeURIComponent(uri)}`);
    a.download = uri.slice(uri.lastIndexOf('/') + 1);
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };

  return html`<div>
    <div class="row between wrap">
      <h1>Job <span class="mono">${id}</span></h1>
      <div class="row">
        <a class="button" href=${`#/jobs/${id}/gallery`}>Gallery</a>
        ${!ended && html`<button type="button" class="danger" onClick=${() => setConfirming(true)}>Cancel</button>`}
      </div>
    </div>
    <div class="row wrap"><${StatusBadge} status=${view.status} /> <${Progress} value=${view.progress} label="job progress" /> ${view.error && html`<span class="muted">${view.error}</span>`}</div>
    <dl class="stats">
      <div><dt>Images</dt><dd data-count="total">${view.counts.total}</dd></div>
      <div><dt>Done</dt><dd data-count="done">${view.counts.done}</dd></div>
      <div><dt>Failed</dt><dd data-count="failed">${view.counts.failed}</dd></div>
      <div><dt>Detections</dt><dd data-stat="detections">${summary?.counts.detections ?? '—'}</dd></div>
      <div><dt>img/s</dt><dd>${view.imagesPerSecond}</dd></div>
      <div><dt>${ended ? 'Took' : 'ETA'}</dt><dd data-stat="time" data-seconds=${ended ? summary?.timing.seconds : view.eta}>${fmtDuration(ended ? summary?.timing.seconds : view.eta)}</dd></div>
      <div><dt>Created</dt><dd>${fmtDate(view.createdAt)}</dd></div>
    </dl>
    <${Section} title="Throughput"><${ThroughputChart} data=${throughput} /></${Section}>
    <${Section} title="Errors by code">
      ${byCode.length === 0
        ? html`<p class="muted">No image errors${ended ? '' : ' so far'}.</p>`
        : html`<div class="table-wrap flat"><table class="errors"><thead><tr><th>Code</th><th>Images</th><th>Examples</th></tr></thead><tbody>
          ${byCode.map(
            ([code, n]) => html`<tr data-code=${code}><td><span class="code">${code}</span></td><td>${n}</td><td>
              <ul class="plain">${(errors?.records ?? []).filter((r) => r.error?.code === code).slice(0, 3).map((r) => html`<li><span class="mono">${r.key}</span>: ${r.error!.message}</li>`)}</ul>
            </td></tr>`,
          )}</tbody></table></div>
          <p><a href=${`#/jobs/${id}/gallery?errors=1`}>Show every failed image</a></p>`}
    </${Section}>
    <${Section} title="Provenance">
      <dl class="kv">
        <dt>Model</dt><dd class="mono">${summary?.provenance.model ? `${summary.provenance.model.name} (sha256 ${summary.provenance.model.sha256.slice(0, 12)}…)` : spec.model?.uri ?? 'the deployment default'}</dd>
        <dt>Engine</dt><dd>${summary?.provenance.engines.map((e) => `${e.kind} ${e.runtimeVersion} on ${e.device} (${e.precision})`).join('; ') || '—'}</dd>
        <dt>Params</dt><dd class="mono">${JSON.stringify(spec.params)}</dd>
        <dt>Input</dt><dd class="mono">${spec.input.uri ?? spec.input.manifest ?? `${spec.input.images?.length ?? 0} listed images`}</dd>
        <dt>Chunk size</dt><dd>${spec.chunkSize}${spec.incremental ? ', incremental' : ''}</dd>
      </dl>
    </${Section}>
    <${Section} title="Outputs">
      ${files.length === 0
        ? html`<p class="muted">Written to <span class="mono">${view.output}</span> when the job ends.</p>`
        : html`<ul class="plain files">${files.map((f) => html`<li><button type="button" class="link" onClick=${() => void download(f).catch(setError)}>${f}</button></li>`)}</ul>`}
    </${Section}>
    ${confirming &&
    html`<${Confirm} text=${`Cancel job ${id}?`} confirm="Cancel job" onClose=${() => setConfirming(false)}
      onConfirm=${() => void api(`/v1/jobs/${id}/cancel`, { method: 'POST' }).then(() => setReload((r) => r + 1), setError)} />`}
  </div>`;
}
