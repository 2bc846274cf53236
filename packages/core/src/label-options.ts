import { z } from 'zod';
import { engineChoiceSchema, outputFormatSchema } from './schemas';

const csv = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);

/** `--imgsz 640` or `--imgsz 480x640` (height x width), multiples of 32. */
export const imgszSchema = z
  .string()
  .regex(/^\d+(x\d+)?$/, 'must be N or HxW, e.g. 640 or 480x640')
  .transform((s) => {
    const [h, w] = s.split('x').map(Number);
    return [h!, w ?? h!] as [number, number];
  })
  .refine(([h, w]) => h >= 32 && w >= 32 && h % 32 === 0 && w % 32 === 0, 'must be multiples of 32, at least 32');

/**
 * `detq label` flags as commander hands them over: strings, keyed by the camel-cased flag name
 * (--max-det -> maxDet). describeFlagIssues turns the keys back into the flags the user typed.
 */
export const labelFlagsSchema = z.object({
  out: z.string().min(1),
  include: z.string().transform(csv).optional(),
  exclude: z.string().transform(csv).optional(),
  allowEmpty: z.boolean().default(false),
  resume: z.boolean().default(false),
  model: z.string().optional(),
  names: z.string().optional(),
  engine: engineChoiceSchema.default('onnxruntime-cpu'),
  half: z.boolean().default(false),
  /** Torch: the network as captured CUDA graphs, one per padded batch size (--no-cuda-graphs: launched op by op). */
  cudaGraphs: z.boolean().default(true),
  /** Where JPEGs are decoded: 'auto' = on the GPU (nvJPEG) when the engine can, 'cpu' = always sharp. */
  decode: z.enum(['auto', 'cpu']).default('auto'),
  conf: z.coerce.number().min(0).max(1).default(0.25),
  iou: z.coerce.number().min(0).max(1).default(0.7),
  maxDet: z.coerce.number().int().min(1).max(10_000).default(300),
  classes: z.string().optional(),
  agnosticNms: z.boolean().default(false),
  multiLabel: z.boolean().default(false),
  imgsz: imgszSchema.optional(),
  /** Default by engine (label.ts): ONNX Runtime on the CPU is fastest at batch 1, GPU engines batch. */
  batch: z.coerce.number().int().min(1).max(256).optional(),
  threads: z.coerce.number().int().min(1).max(256).optional(),
  sessions: z.coerce.number().int().min(1).max(256).optional(),
  formats: z
    .string()
    .default('jsonl')
    .transform(csv)
    .pipe(z.array(outputFormatSchema).min(1)),
  previews: z.coerce.number().int().min(0).default(0),
  saveConf: z.boolean().default(false),
  cocoIds: z.enum(['contiguous', 'coco91']).default('contiguous'),
  maxPixels: z.coerce.number().int().min(1).default(100_000_000),
  json: z.boolean().default(false),
});
export type LabelFlags = z.infer<typeof labelFlagsSchema>;

/** Turns a zod error on flags into one line per bad flag: "--conf: Too big: expected number to be <=1". */
export function describeFlagIssues(error: z.ZodError): string {
  const flag = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  return error.issues
    .map((i) => `${flag(String(i.path[0] ?? ''))}: ${i.message}${i.input !== undefined && !Number.isNaN(i.input) ? ` (got ${JSON.stringify(i.input)})` : ''}`)
    .join('\n');
}

/** `--classes 0,2,person` against the model's names. */
export function parseClasses(spec: string, names: readonly string[]): number[] {
  return csv(spec).map((c) => {
    if (/^\d+$/.test(c)) {
      const id = Number(c);
      if (id >= names.length) throw new Error(`--classes: class id ${id} is out of range (the model has ${names.length} classes)`);
      return id;
    }
    const id = names.indexOf(c);
    if (id < 0) throw new Error(`--classes: unknown class name '${c}'`);
    return id;
  });
}
