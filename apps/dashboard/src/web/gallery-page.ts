import { useEffect, useRef, useState } from 'preact/hooks';
import { classColour } from '@detq/core/class-colours';
import { api, blobUrl } from './api';
import type { RecordsPage, RecordView } from './types';
import { ErrorNote, html } from './ui';

const PAGE = 24;

/** The image through the API (as a blob: URL, since an img cannot send the bearer header). */
function AuthImage({ src, alt }: { src: string; alt: string }) {
  const [url, setUrl] = useState<string>();
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    const stop = new AbortController();
    let made: string | undefined;
    blobUrl(src, stop.signal).then(
      (u) => setUrl((made = u)),
      () => stop.signal.aborted || setFailed(true),
    );
    return () => {
      stop.abort();
      if (made) URL.revokeObjectURL(made);
    };
  }, [src]);
  if (failed) return html`<div class="img-missing">image unavailable</div>`;
  return url ? html`<img src=${url} alt=${alt} />` : html`<div class="img-loading" aria-hidden="true"></div>`;
}

/** The record's boxes over its image, in the image's own pixel frame (so any display size fits). */
function Boxes({ record, labels }: { record: RecordView; labels: boolean }) {
  const font = Math.max(record.width, record.height) / (labels ? 45 : 25);
  return html`<svg class="boxes" viewBox=${`0 0 ${record.width} ${record.height}`} preserveAspectRatio="none" aria-hidden="true">
    ${record.detections.map((d) => {
      const [x1, y1, x2, y2] = d.box;
      const colour = classColour(d.class_id);
      return html`<g>
        <rect class="box" x=${x1} y=${y1} width=${x2 - x1} height=${y2 - y1} stroke=${colour} data-class=${d.class_name} data-confidence=${d.confidence} />
        <text x=${x1 + font * 0.2} y=${Math.max(font, y1 - font * 0.25)} fill=${colour} font-size=${font}>${d.class_name} ${d.confidence.toFixed(2)}</text>
      </g>`;
    })}
  </svg>`;
}

function Viewer({ jobId, record, onClose }: { jobId: string; record: RecordView; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => ref.current?.showModal(), []);
  return html`<dialog ref=${ref} class="viewer" onClose=${onClose} aria-label=${record.key}>
    <div class="row between"><h2 class="mono">${record.key}</h2><button type="button" onClick=${() => ref.current?.close()}>Close</button></div>
    <figure class="frame" style=${`aspect-ratio: ${record.width} / ${record.height}; width: min(100%, calc(70vh * ${record.width / record.height}))`}>
      <${AuthImage} src=${`/v1/jobs/${jobId}/image?size=full&key=${encodeURIComponent(record.key)}`} alt=${record.key} />
      <${Boxes} record=${record} labels=${true} />
    </figure>
    <p class="muted">${record.width}×${record.height}, ${record.detections.length} detections</p>
    <ul class="plain detections">${record.detections.map(
      (d) => html`<li><span class="swatch" style=${`background:${classColour(d.class_id)}`}></span>${d.class_name} ${d.confidence.toFixed(3)} <span class="muted mono small">[${d.box.map((v) => v.toFixed(0)).join(', ')}]</span></li>`,
    )}</ul>
  </dialog>`;
}

/** The image's own aspect ratio, as large as fits its tile (a size container, so cq units apply). */
const fitted = (r: RecordView) => `aspect-ratio: ${r.width} / ${r.height}; width: min(100cqw, calc(100cqh * ${r.width / r.height}))`;

/** The job's images with their boxes: paged, filtered by class, confidence, or errors only. */
export function GalleryPage({ id, query }: { id: string; query: URLSearchParams }) {
  const [cls, setCls] = useState(query.get('class') ?? '');
  const [minConfidence, setMinConfidence] = useState(Number(query.get('min') ?? 0.25));
  const [errorsOnly, setErrorsOnly] = useState(query.get('errors') === '1');
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<RecordsPage>();
  const [error, setError] = useState<unknown>();
  const [open, setOpen] = useState<RecordView>();

  useEffect(() => {
    const q = new URLSearchParams({ offset: String(offset), limit: String(PAGE), minConfidence: String(minConfidence), errorsOnly: String(errorsOnly) });
    if (cls && !errorsOnly) q.set('class', cls);
    api<RecordsPage>(`/v1/jobs/${id}/records?${q}`).then((p) => (setPage(p), setError(undefined)), setError);
  }, [id, cls, minConfidence, errorsOnly, offset]);

  const refilter = (fn: () => void) => (fn(), setOffset(0));
  const pages = page ? Math.max(1, Math.ceil(page.total / PAGE)) : 1;
  return html`<div>
    <div class="row between wrap"><h1>Gallery <a class="mono small" href=${`#/jobs/${id}`}>${id}</a></h1></div>
    <form class="filters row wrap" onSubmit=${(e: Event) => e.preventDefault()} aria-label="Filters">
      <label>Class <select name="class" value=${cls} disabled=${errorsOnly} onChange=${(e: Event) => refilter(() => setCls((e.target as HTMLSelectElement).value))}>
        <option value="">all classes</option>
        ${Object.entries(page?.classes ?? {}).sort((a, b) => b[1] - a[1]).map(([name, n]) => html`<option value=${name}>${name} (${n})</option>`)}
      </select></label>
      <label>Min confidence <input type="range" name="minConfidence" min="0" max="1" step="0.05" value=${minConfidence} disabled=${errorsOnly}
        onChange=${(e: Event) => refilter(() => setMinConfidence(Number((e.target as HTMLInputElement).value)))} /> <output>${minConfidence.toFixed(2)}</output></label>
      <label class="check"><input type="checkbox" name="errorsOnly" checked=${errorsOnly} onChange=${(e: Event) => refilter(() => setErrorsOnly((e.target as HTMLInputElement).checked))} /> Errors only</label>
    </form>
    <${ErrorNote} error=${error} />
    ${page && html`<p class="muted" aria-live="polite">${page.total} ${errorsOnly ? 'failed images' : 'images'}</p>`}
    <ul class="gallery" aria-label="Images">
      ${(page?.records ?? []).map((r) =>
        r.error
          ? html`<li class="tile tile-error" data-key=${r.key} data-code=${r.error.code}>
              <div class="tile-body"><span class="code">${r.error.code}</span><p class="small">${r.error.message}</p></div>
              <p class="caption mono">${r.key}</p>
            </li>`
          : html`<li class="tile" data-key=${r.key} data-detections=${r.detections.length}>
              <div class="thumb">
                <button type="button" class="frame" style=${fitted(r)} onClick=${() => setOpen(r)} aria-label=${`${r.key}: ${r.detections.length} detections, open`}>
                  <${AuthImage} src=${`/v1/jobs/${id}/image?key=${encodeURIComponent(r.key)}`} alt="" />
                  <${Boxes} record=${r} labels=${false} />
                </button>
              </div>
              <p class="caption mono">${r.key} · ${r.detections.length}</p>
            </li>`,
      )}
    </ul>
    ${page &&
    page.total > PAGE &&
    html`<nav class="row pager" aria-label="Pages">
      <button type="button" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>Previous</button>
      <span>Page ${offset / PAGE + 1} of ${pages}</span>
      <button type="button" disabled=${offset + PAGE >= page.total} onClick=${() => setOffset(offset + PAGE)}>Next</button>
    </nav>`}
    ${open && html`<${Viewer} jobId=${id} record=${open} onClose=${() => setOpen(undefined)} />`}
  </div>`;
}
