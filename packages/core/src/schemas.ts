import { z } from 'zod';

/** Post-processing parameters, Ultralytics' names and defaults. */
export const detectParamsSchema = z.object({
  conf: z.number().min(0).max(1).default(0.25),
  iou: z.number().min(0).max(1).default(0.7),
  maxDet: z.number().int().min(1).max(10_000).default(300),
  classes: z.array(z.number().int().min(0)).min(1).optional(),
  agnosticNms: z.boolean().default(false),
  multiLabel: z.boolean().default(false),
});
export type DetectParams = z.infer<typeof detectParamsSchema>;

export const boxSchema = z.tuple([z.number(), z.number(), z.number(), z.number()]);
export type Box = z.infer<typeof boxSchema>;

export const detectionSchema = z.object({
  box: boxSchema,
  confidence: z.number(),
  class_id: z.number().int(),
  class_name: z.string(),
});
export type Detection = z.infer<typeof detectionSchema>;

export const engineKindSchema = z.enum(['onnxruntime-cpu', 'torch', 'tensorrt']);
export type EngineKind = z.infer<typeof engineKindSchema>;

/** What --engine / DETQ_ENGINE take: an engine, or `auto` (GPU engines first, else onnxruntime-cpu). */
export const engineChoiceSchema = z.union([engineKindSchema, z.literal('auto')]);
export type EngineChoice = z.infer<typeof engineChoiceSchema>;

export const modelInfoSchema = z.object({
  name: z.string(),
  sha256: z.string(),
  engine: engineKindSchema,
  imgsz: z.tuple([z.number().int(), z.number().int()]),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;

export const imageErrorSchema = z.object({ code: z.string(), message: z.string() });
export type ImageErrorInfo = z.infer<typeof imageErrorSchema>;

/** The canonical per-image record every output format is rendered from (one JSONL line). */
export const imageRecordSchema = z.object({
  key: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  detections: z.array(detectionSchema),
  error: imageErrorSchema.optional(),
  model: modelInfoSchema,
  params: detectParamsSchema,
});
export type ImageRecord = z.infer<typeof imageRecordSchema>;

export const outputFormatSchema = z.enum(['jsonl', 'coco', 'yolo', 'labelstudio']);
export type OutputFormat = z.infer<typeof outputFormatSchema>;
