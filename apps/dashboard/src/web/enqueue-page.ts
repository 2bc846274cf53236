import { useState } from 'preact/hooks';
import { api, ApiError, type FieldError } from './api';
import { checkSpec, EMPTY_SPEC, errorsByInput, SpecFields, specOf, type SpecValues } from './spec-form';
import { ErrorNote, html } from './ui';

/** A new job: checked in the browser with the API's zod schema, then the API's own answer per field. */
export function EnqueuePage() {
  const [values, setValues] = useState<SpecValues>(EMPTY_SPEC);
  const [fields, setFields] = useState<FieldError[]>([]);
  const [checked, setChecked] = useState(false);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const set = (k: string, v: string | boolean | string[]) => {
    const next = { ...values, [k]: v };
    setValues(next);
    if (checked) setFields(checkSpec(next));
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    setChecked(true);
    setError(undefined);
    const local = checkSpec(values);
    setFields(local);
    if (local.length) return focusFirstError();
    setBusy(true);
    try {
      const res = await api<{ id: string }>('/v1/jobs', { method: 'POST', body: JSON.stringify(specOf(values)) });
      location.hash = `#/jobs/${res.id}`;
    } catch (err) {
      if (err instanceof ApiError && err.fields.length) {
        setFields(err.fields);
        focusFirstError();
      }
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const errors = errorsByInput(fields);
  return html`<div>
    <h1>New job</h1>
    <form class="spec" onSubmit=${submit} novalidate aria-label="New job">
      <${SpecFields} values=${values} errors=${errors} set=${set} />
      <${ErrorNote} error=${error} />
      ${fields.length > 0 && html`<p class="error" role="status">${fields.length} field${fields.length > 1 ? 's' : ''} to fix.</p>`}
      <div class="row end"><button type="submit" class="primary" disabled=${busy}>Enqueue</button></div>
    </form>
  </div>`;
}

export function focusFirstError() {
  requestAnimationFrame(() => document.querySelector<HTMLElement>('[aria-invalid="true"], .field.invalid input')?.focus());
}
