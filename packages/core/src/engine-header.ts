import { z } from 'zod';
import { engineKindSchema } from './schemas';

const shape = z.string().regex(/^\d+x3x\d+x\d+$/, 'NxCxHxW with C=3');

/** What `detq verify` / `build-engine --verify` measured: the parity gate's figures. */
export const parityFiguresSchema = z.object({
  passed: z.boolean(),
  images: z.number().int().min(0),
  /** Reference boxes matched by a box of the same class at IoU >= minIou. */
  referenceBoxes: z.number().int().min(0),
  matchedBoxes: z.number().int().min(0),
  matchedFraction: z.number().min(0).max(1),
  minMatchedFraction: z.number(),
  minIou: z.number(),
  /** With --labels: mAP50-95 of both and the drift allowed. */
  map5095: z.number().optional(),
  referenceMap5095: z.number().optional(),
  maxMapDrift: z.number().optional(),
  reference: z.string(),
  referenceSha256: z.string(),
  checkedAt: z.string(),
  reasons: z.array(z.string()),
});
export type ParityFigures = z.infer<typeof parityFiguresSchema>;

/**
 * The header of a detq TensorRT engine file: everything the plan is bound to (its key), what the
 * engine reports (class names, output layout from the ONNX metadata) and the plan's checksum.
 */
export const engineHeaderSchema = z.object({
  format: z.literal(1),
  key: z.object({
    modelSha256: z.string().regex(/^[0-9a-f]{64}$/),
    gpu: z.string().min(1),
    computeCapability: z.string().regex(/^\d+\.\d+$/),
    /** major.minor.patch.build of the TensorRT library that built the plan. */
    tensorrt: z.string().regex(/^\d+\.\d+\.\d+\.\d+$/),
    precision: z.enum(['fp32', 'fp16', 'int8']),
    input: z.string().min(1),
    min: shape,
    opt: shape,
    max: shape,
    /** Optimisation profiles: one per execution context. */
    profiles: z.number().int().min(1),
  }),
  quantization: z.enum(['none', 'calibrated', 'explicit']),
  model: z.string(),
  classNames: z.array(z.string()),
  /** Ultralytics' end2end flag from the ONNX metadata, when it had one. */
  end2end: z.boolean().optional(),
  planBytes: z.number().int().min(1),
  planSha256: z.string().regex(/^[0-9a-f]{64}$/),
  builtAt: z.string(),
  parity: parityFiguresSchema.optional(),
});
export type EngineHeader = z.infer<typeof engineHeaderSchema>;

const engineShape = z.string().regex(/^\d+x3x\d+x\d+$/, 'must be NxCxHxW with C=3, e.g. 1x3x640x640');

/** `detq build-engine` flags (commander's camel-cased keys; describeFlagIssues names the flags back). */
export const buildEngineFlagsSchema = z
  .object({
    fp16: z.boolean().default(false),
    int8: z.boolean().default(false),
    calib: z.string().min(1).optional(),
    calibCache: z.string().min(1).optional(),
    calibAlgo: z.enum(['minmax', 'entropy']).default('minmax'),
    calibImages: z.coerce.number().int().min(1).default(512),
    calibBatch: z.coerce.number().int().min(1).max(256).default(8),
    workspace: z.coerce.number().int().min(16).default(4096),
    min: engineShape.default('1x3x640x640'),
    opt: engineShape.default('16x3x640x640'),
    max: engineShape.default('32x3x640x640'),
    contexts: z.coerce.number().int().min(1).max(16).default(2),
    out: z.string().min(1).optional(),
    verify: z.string().min(1).optional(),
    labels: z.string().min(1).optional(),
    reference: z.string().min(1).optional(),
  })
  .refine((f) => !(f.fp16 && f.int8), { message: 'choose one of --fp16 and --int8', path: ['int8'] })
  .refine((f) => !f.labels || f.verify, { message: 'needs --verify <images>', path: ['labels'] });
export type BuildEngineFlags = z.infer<typeof buildEngineFlagsSchema>;

/** `detq verify` flags. */
export const verifyFlagsSchema = z.object({
  engine: engineKindSchema,
  model: z.string().min(1),
  reference: z.string().min(1).optional(),
  images: z.string().min(1),
  labels: z.string().min(1).optional(),
  half: z.boolean().default(false),
  batch: z.coerce.number().int().min(1).max(256).default(8),
  threads: z.coerce.number().int().min(1).max(256).optional(),
  json: z.boolean().default(false),
});
export type VerifyFlags = z.infer<typeof verifyFlagsSchema>;
