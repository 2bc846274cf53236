// Hand-encoded ONNX protobuf for tests that need a model of a particular shape (no onnx package in
// Node): just the fields ONNX Runtime reads.
import { bytesField as bytes, intField as int, messageField as msg } from '@detq/inference/onnx-protobuf';

type Field = Buffer;

const FLOAT = 1;
const INT64 = 7;

function valueInfo(field: number, name: string, dims: (number | string)[], elemType = FLOAT): Field {
  const dim = (d: number | string) => msg(1, typeof d === 'number' ? int(1, d) : bytes(2, d));
  return msg(field, bytes(1, name), msg(2, msg(1, int(1, elemType), msg(2, ...dims.map(dim)))));
}

function initializer(name: string, type: number, dims: number[], raw: Buffer): Field {
  return msg(5, ...dims.map((d) => int(1, d)), int(2, type), bytes(8, name), bytes(9, raw));
}

const node = (op: string, inputs: string[], outputs: string[]): Field =>
  msg(1, ...inputs.map((i) => bytes(1, i)), ...outputs.map((o) => bytes(2, o)), bytes(3, op.toLowerCase()), bytes(4, op));

/**
 * An end-to-end style detector on a 2x2 input: `images` [batch,3,2,2] is reshaped to `output0`
 * [batch,2,6] and scaled column-wise by `scale`, so each letterboxed pixel value becomes one number of
 * the two x1,y1,x2,y2,score,class rows (CHW order). Carries Ultralytics-style metadata. Options: another
 * input (ONNX elem type, dims) for models detq must refuse, the default opset, and `scale` stored as
 * external data in a file of that name beside the model (the caller writes `externalScale(scale)` there).
 */
export function endToEndOnnx(
  scale: number[],
  metadata: Record<string, string>,
  options: { input?: { elemType: number; dims: (number | string)[] }; opset?: number; externalScaleFile?: string } = {},
): Buffer {
  const input = options.input ?? { elemType: FLOAT, dims: ['batch', 3, 2, 2] };
  const shape = Buffer.alloc(24);
  [-1n, 2n, 6n].forEach((v, i) => shape.writeBigInt64LE(v, i * 8));
  const scales = externalScale(scale);
  // TensorProto external_data (13) {location}, data_location (14) EXTERNAL.
  const scaleTensor = options.externalScaleFile
    ? msg(5, int(1, 6), int(2, FLOAT), bytes(8, 'scale'), msg(13, bytes(1, 'location'), bytes(2, options.externalScaleFile)), int(14, 1))
    : initializer('scale', FLOAT, [6], scales);
  const graph = msg(
    7,
    node('Reshape', ['images', 'shape'], ['rows']),
    node('Mul', ['rows', 'scale'], ['output0']),
    bytes(2, 'end2end'),
    initializer('shape', INT64, [3], shape),
    scaleTensor,
    valueInfo(11, 'images', input.dims, input.elemType),
    valueInfo(12, 'output0', ['batch', 2, 6]),
  );
  const props = Object.entries(metadata).map(([k, v]) => msg(14, bytes(1, k), bytes(2, v)));
  return Buffer.concat([int(1, 8), msg(8, bytes(1, ''), int(2, options.opset ?? 13)), graph, ...props]);
}

/** The scale column factors as the raw float32 bytes of the model's `scale` tensor. */
export function externalScale(scale: number[]): Buffer {
  const bytes = Buffer.alloc(24);
  scale.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return bytes;
}
