import { z } from 'zod';
import type { JobSpec } from './job-spec';
import { checkScope, inScope } from './uri';

/** Roles a token may hold besides submitting its own jobs. */
export const roleSchema = z.enum(['admin', 'metrics']);
export type Role = z.infer<typeof roleSchema>;

export const scopeSchema = z.string().superRefine((s, ctx) => {
  const problem = checkScope(s);
  if (problem) ctx.addIssue({ code: 'custom', message: `scope ${JSON.stringify(s)}: ${problem}` });
});

/** Per-job caps an admin sets per token; unset caps fall back to the deployment's (DETQ_MAX_*). */
export const jobCapsSchema = z.strictObject({
  maxImgsz: z.number().int().min(32).max(4096).optional(),
  maxImages: z.number().int().min(1).optional(),
  maxObjectBytes: z.number().int().min(1).optional(),
});
export type JobCaps = z.infer<typeof jobCapsSchema>;
export type ResolvedCaps = Required<JobCaps>;

/** What a principal (a token's name) may do: what the API and the workers both check. */
export interface Access {
  scopes: string[];
  roles: Role[];
  caps: ResolvedCaps;
}

export type FieldProblem = { field: string; message: string };

/** Every URI a job will touch, with the field it came from. Manifest lines are checked at planning. */
export function urisOf(spec: JobSpec): FieldProblem[] {
  const { input, output, model } = spec;
  return [
    ...(input.uri ? [{ field: 'input.uri', message: input.uri }] : []),
    ...(input.manifest ? [{ field: 'input.manifest', message: input.manifest }] : []),
    ...(input.images ?? []).map((u, i) => ({ field: `input.images.${i}`, message: u })),
    { field: 'output.uri', message: output.uri },
    ...(model ? [{ field: 'model.uri', message: model.uri }] : []),
  ];
}

/** URIs of the spec outside the scopes, each with its field. */
export function outOfScope(spec: JobSpec, scopes: readonly string[]): FieldProblem[] {
  return urisOf(spec)
    .filter((u) => !inScope(u.message, scopes))
    .map((u) => ({ field: u.field, message: `${u.message} is not in scope` }));
}

/** Caps a spec exceeds on its face (the image count of a prefix or manifest is checked at planning). */
export function overCaps(spec: JobSpec, caps: ResolvedCaps): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (spec.params.imgsz !== undefined && spec.params.imgsz > caps.maxImgsz)
    problems.push({ field: 'params.imgsz', message: `at most ${caps.maxImgsz} for this token` });
  if (spec.input.images && spec.input.images.length > caps.maxImages)
    problems.push({ field: 'input.images', message: `at most ${caps.maxImages} images for this token` });
  return problems;
}
