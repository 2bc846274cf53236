import { describeIssues, jobSpecSchema } from '@detq/core/job-spec';
import { outputFormatSchema } from '@detq/core/schemas';
import type { FieldError } from './api';
import { html } from './ui';

/** The form's raw values, by the spec field they fill (dotted path). */
export type SpecValues = Record<string, string | boolean | string[]>;

export const EMPTY_SPEC: SpecValues = {
  'input.uri': '',
  'input.include': '',
  'output.uri': '',
  'output.formats': ['jsonl'],
  'model.uri': '',
  'model.sha256': '',
  'params.conf': '0.25',
  'params.iou': '0.7',
  'params.imgsz': '',
  chunkSize: '256',
  priority: '',
  idempotencyKey: '',
  incremental: false,
};

const num = (v: string) => (v.trim() === '' ? undefined : Number.isNaN(Number(v)) ? v : Number(v));
const text = (v: string) => (v.trim() === '' ? undefined : v.trim());

/** The spec object the form describes; empty fields are left out so the schema's defaults apply. */
export function specOf(v: SpecValues): Record<string, unknown> {
  const s = (k: string) => String(v[k] ?? '');
  const include = s('input.include').split(',').map((g) => g.trim()).filter(Boolean);
  const model = text(s('model.uri'));
  const sha = text(s('model.sha256'));
  const drop = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined));
  return drop({
    input: drop({ uri: text(s('input.uri')), include: include.length ? include : undefined }),
    output: { uri: s('output.uri').trim(), formats: v['output.formats'] },
    model: model || sha ? drop({ uri: model, sha256: sha }) : undefined,
    params: drop({ conf: num(s('params.conf')), iou: num(s('params.iou')), imgsz: num(s('params.imgsz')) }),
    chunkSize: num(s('chunkSize')),
    priority: num(s('priority')),
    idempotencyKey: text(s('idempotencyKey')),
    incremental: v.incremental === true ? true : undefined,
  });
}

/** The same zod schema the API validates with, so the form names the same fields the API would. */
export function checkSpec(v: SpecValues, path = ''): FieldError[] {
  const parsed = jobSpecSchema.safeParse(specOf(v));
  return parsed.success ? [] : describeIssues(parsed.error).map((f) => ({ ...f, field: path + f.field }));
}

/** Which input shows an error for a field path (a whole-object error shows at its first input). */
export function inputFor(field: string, prefix = ''): string {
  const f = field.startsWith(prefix) ? field.slice(prefix.length) : field;
  if (f === 'input' || f.startsWith('input.images') || f.startsWith('input.manifest')) return `${prefix}input.uri`;
  if (f.startsWith('output.formats')) return `${prefix}output.formats`;
  if (f === 'model') return `${prefix}model.uri`;
  return prefix + f;
}

export function Field({ name, label, errors, hint, children }: { name: string; label: string; errors: Record<string, string>; hint?: string; children: unknown }) {
  const err = errors[name];
  return html`<div class=${`field${err ? ' invalid' : ''}`} data-field=${name}>
    <label for=${`f-${name}`}>${label}</label>
    ${children}
    ${hint && html`<p class="hint" id=${`h-${name}`}>${hint}</p>`}
    ${err && html`<p class="field-error" id=${`e-${name}`} role="alert">${err}</p>`}
  </div>`;
}

/** Text input bound to one spec value, described by its hint and error. */
export function TextInput({ name, values, errors, set, placeholder, type = 'text', prefix = '' }: {
  name: string; values: SpecValues; errors: Record<string, string>; set: (k: string, v: string | boolean | string[]) => void; placeholder?: string; type?: string; prefix?: string;
}) {
  const key = prefix + name;
  return html`<input id=${`f-${key}`} name=${key} type=${type} value=${String(values[name] ?? '')} placeholder=${placeholder ?? ''} step=${type === 'number' ? 'any' : undefined}
    aria-invalid=${errors[key] ? 'true' : 'false'} aria-describedby=${`h-${key} e-${key}`} onInput=${(e: Event) => set(name, (e.target as HTMLInputElement).value)} />`;
}

/** The job spec's fields (shared by the enqueue form and the schedule form). */
export function SpecFields({ values, errors, set, prefix = '' }: { values: SpecValues; errors: Record<string, string>; set: (k: string, v: string | boolean | string[]) => void; prefix?: string }) {
  const t = (name: string, placeholder?: string, type?: string) => html`<${TextInput} name=${name} values=${values} errors=${errors} set=${set} placeholder=${placeholder} type=${type} prefix=${prefix} />`;
  const formats = values['output.formats'] as string[];
  const p = (n: string) => prefix + n;
  return html`<fieldset><legend>Input and output</legend>
      <${Field} name=${p('input.uri')} label="Input prefix" errors=${errors} hint="s3://bucket/prefix/ — every image under it">${t('input.uri', 's3://bucket/images/')}</${Field}>
      <${Field} name=${p('input.include')} label="Include globs" errors=${errors} hint="comma-separated, e.g. **/*.jpg">${t('input.include', '**/*.jpg')}</${Field}>
      <${Field} name=${p('output.uri')} label="Output prefix" errors=${errors}>${t('output.uri', 's3://bucket/labels/')}</${Field}>
      <div class=${`field${errors[p('output.formats')] ? ' invalid' : ''}`} data-field=${p('output.formats')} role="group" aria-labelledby=${`l-${p('output.formats')}`}>
        <span class="label" id=${`l-${p('output.formats')}`}>Formats</span>
        <div class="row wrap">${outputFormatSchema.options.map(
          (f) => html`<label class="check"><input type="checkbox" name=${p(`format-${f}`)} checked=${formats.includes(f)}
            onChange=${(e: Event) => set('output.formats', (e.target as HTMLInputElement).checked ? [...formats, f] : formats.filter((x) => x !== f))} /> ${f}</label>`,
        )}</div>
        ${errors[p('output.formats')] && html`<p class="field-error" role="alert">${errors[p('output.formats')]}</p>`}
      </div>
    </fieldset>
    <fieldset><legend>Model and parameters</legend>
      <${Field} name=${p('model.uri')} label="Model" errors=${errors} hint="s3:// URI of an ONNX model; empty: the deployment default">${t('model.uri', 's3://models/yolo11n.onnx')}</${Field}>
      <${Field} name=${p('model.sha256')} label="Model sha256" errors=${errors}>${t('model.sha256')}</${Field}>
      <div class="row wrap fields">
        <${Field} name=${p('params.conf')} label="Confidence" errors=${errors}>${t('params.conf', '0.25', 'number')}</${Field}>
        <${Field} name=${p('params.iou')} label="IoU" errors=${errors}>${t('params.iou', '0.7', 'number')}</${Field}>
        <${Field} name=${p('params.imgsz')} label="Image size" errors=${errors}>${t('params.imgsz', '640', 'number')}</${Field}>
        <${Field} name=${p('chunkSize')} label="Chunk size" errors=${errors}>${t('chunkSize', '256', 'number')}</${Field}>
        <${Field} name=${p('priority')} label="Priority" errors=${errors} hint="1 is the highest">${t('priority', '', 'number')}</${Field}>
      </div>
      <${Field} name=${p('idempotencyKey')} label="Idempotency key" errors=${errors}>${t('idempotencyKey')}</${Field}>
      <label class="check"><input type="checkbox" name=${p('incremental')} checked=${values.incremental === true} onChange=${(e: Event) => set('incremental', (e.target as HTMLInputElement).checked)} /> Incremental: skip images already labelled with this model and params</label>
    </fieldset>`;
}

/** Field errors keyed by the input that shows them; the first message per input wins. */
export function errorsByInput(fields: FieldError[], prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fields) out[inputFor(f.field, prefix)] ??= f.message;
  return out;
}
