import { h, type ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import type { JobStatus } from '@detq/core/job-spec';

/** Preact without a JSX step: tagged templates. */
export const html = htm.bind(h);

export const TERMINAL: readonly JobStatus[] = ['completed', 'completed_with_errors', 'failed', 'cancelled'];

export function StatusBadge({ status }: { status: string }) {
  return html`<span class=${`badge badge-${status}`} data-status=${status}>${status.replaceAll('_', ' ')}</span>`;
}

export const fmtDate = (iso?: string) => (iso ? new Date(iso).toLocaleString() : '—');

export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function Progress({ value, label }: { value: number | null; label: string }) {
  return value === null
    ? html`<span class="muted">planning…</span>`
    : html`<span class="progress"><progress max="1" value=${value} aria-label=${label}></progress> <span>${Math.floor(value * 100)}%</span></span>`;
}

/** A yes/no question in a modal <dialog> (focus trap and Escape come with the element). */
export function Confirm({ text, confirm, onConfirm, onClose }: { text: string; confirm: string; onConfirm: () => void; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return html`<dialog ref=${ref} class="confirm" onClose=${onClose} aria-labelledby="confirm-text">
    <p id="confirm-text">${text}</p>
    <div class="row end">
      <button type="button" onClick=${() => ref.current?.close()}>Keep</button>
      <button type="button" class="danger" onClick=${() => (onConfirm(), ref.current?.close())}>${confirm}</button>
    </div>
  </dialog>`;
}

export function ErrorNote({ error }: { error: unknown }) {
  return error ? html`<p class="error" role="alert">${error instanceof Error ? error.message : String(error)}</p>` : null;
}

export function Section({ title, children }: { title: string; children: ComponentChildren }) {
  return html`<section class="card"><h2>${title}</h2>${children}</section>`;
}

/** Re-runs `fn` every `ms` while mounted; the last answer and error are kept. */
export function usePoll<T>(fn: () => Promise<T>, ms: number, deps: unknown[] = []): { data: T | undefined; error: unknown; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      fn().then(
        (d) => live && (setData(d), setError(undefined)),
        (e: unknown) => live && setError(e),
      );
    void run();
    const timer = setInterval(() => void run(), ms);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}
