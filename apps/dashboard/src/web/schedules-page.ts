import { useEffect, useState } from 'preact/hooks';
import { describeIssues, scheduleSpecSchema } from '@detq/core/job-spec';
import { api, ApiError, type FieldError } from './api';
import { focusFirstError } from './enqueue-page';
import { EMPTY_SPEC, errorsByInput, Field, SpecFields, specOf, type SpecValues } from './spec-form';
import type { ScheduleView } from './types';
import { Confirm, ErrorNote, fmtDate, html, Section, usePoll } from './ui';

/** Next runs of a cron pattern, from the API (the parser BullMQ schedules with). */
function CronPreview({ cron, tz, onError }: { cron: string; tz: string; onError: (msg: string | undefined) => void }) {
  const [next, setNext] = useState<string[]>([]);
  useEffect(() => {
    if (cron.trim().length < 9) return setNext([]);
    const timer = setTimeout(() => {
      const q = new URLSearchParams({ cron, ...(tz && { tz }) });
      api<{ next: string[] }>(`/v1/cron/next?${q}`).then(
        (r) => (setNext(r.next), onError(undefined)),
        (e: ApiError) => (setNext([]), onError(e.fields[0]?.message ?? e.message)),
      );
    }, 250);
    return () => clearTimeout(timer);
  }, [cron, tz]);
  return next.length ? html`<div class="preview" aria-live="polite"><span class="label">Next runs</span><ol class="small">${next.map((n) => html`<li>${fmtDate(n)}</li>`)}</ol></div>` : null;
}

export function SchedulesPage() {
  const list = usePoll(() => api<{ schedules: ScheduleView[] }>('/v1/schedules'), 15_000);
  const [removing, setRemoving] = useState<string>();
  const [values, setValues] = useState<SpecValues>({ ...EMPTY_SPEC, id: '', cron: '0 2 * * *', tz: '' });
  const [fields, setFields] = useState<FieldError[]>([]);
  const [cronError, setCronError] = useState<string>();
  const [error, setError] = useState<unknown>();
  const s = (k: string) => String(values[k] ?? '');
  const body = () => ({ id: s('id'), cron: s('cron'), ...(s('tz') && { tz: s('tz') }), spec: specOf(values) });
  const check = (v: SpecValues = values) => {
    const parsed = scheduleSpecSchema.safeParse({ id: String(v.id ?? ''), cron: String(v.cron ?? ''), ...(v.tz && { tz: String(v.tz) }), spec: specOf(v) });
    return parsed.success ? [] : describeIssues(parsed.error);
  };
  const set = (k: string, v: string | boolean | string[]) => {
    const next = { ...values, [k]: v };
    setValues(next);
    if (fields.length) setFields(check(next));
  };
  const add = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    const local = check();
    setFields(local);
    if (local.length) return focusFirstError();
    try {
      await api('/v1/schedules', { method: 'POST', body: JSON.stringify(body()) });
      setValues({ ...values, id: '' });
      list.reload();
    } catch (err) {
      if (err instanceof ApiError) setFields(err.fields);
      setError(err);
    }
  };
  const errors = errorsByInput(fields, 'spec.');
  const own = errorsByInput(fields);
  if (cronError) own.cron ??= cronError;
  const top = (name: string, label: string, placeholder: string, hint?: string) =>
    html`<${Field} name=${name} label=${label} errors=${own} hint=${hint}>
      <input id=${`f-${name}`} name=${name} value=${s(name)} placeholder=${placeholder} aria-invalid=${own[name] ? 'true' : 'false'} aria-describedby=${`h-${name} e-${name}`}
        onInput=${(e: Event) => set(name, (e.target as HTMLInputElement).value)} />
    </${Field}>`;
  return html`<div>
    <h1>Schedules</h1>
    <${ErrorNote} error=${list.error} />
    ${list.data &&
    (list.data.schedules.length === 0
      ? html`<p class="muted">No schedules.</p>`
      : html`<div class="table-wrap"><table class="schedules"><thead><tr><th>Id</th><th>Cron</th><th class="wide">Time zone</th><th>Next run</th><th><span class="sr-only">Actions</span></th></tr></thead><tbody>
        ${list.data.schedules.map(
          (sc) => html`<tr data-schedule=${sc.id}><td class="mono">${sc.id}</td><td class="mono">${sc.cron}</td><td class="wide">${sc.tz ?? 'UTC'}</td><td>${fmtDate(sc.next)}</td>
            <td><button type="button" class="danger small" onClick=${() => setRemoving(sc.id)}>Remove</button></td></tr>`,
        )}</tbody></table></div>`)}
    <${Section} title="Add a schedule">
      <form class="spec" onSubmit=${add} novalidate aria-label="Add a schedule">
        <div class="row wrap fields">
          ${top('id', 'Id', 'nightly-cams', 'adding an existing id replaces it')}
          ${top('cron', 'Cron', '0 2 * * *', 'minute hour day month weekday (optional leading seconds)')}
          ${top('tz', 'Time zone', 'Europe/Paris')}
        </div>
        <${CronPreview} cron=${s('cron')} tz=${s('tz')} onError=${setCronError} />
        <${SpecFields} values=${values} errors=${errors} set=${set} prefix="spec." />
        <${ErrorNote} error=${error} />
        <div class="row end"><button type="submit" class="primary">Add schedule</button></div>
      </form>
    </${Section}>
    ${removing &&
    html`<${Confirm} text=${`Remove schedule ${removing}? Runs already made are kept.`} confirm="Remove" onClose=${() => setRemoving(undefined)}
      onConfirm=${() => void api(`/v1/schedules/${encodeURIComponent(removing)}`, { method: 'DELETE' }).then(list.reload, setError)} />`}
  </div>`;
}
