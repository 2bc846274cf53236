// Hand-encoded ONNX protobuf for tests that need a model of a particular shape (no onnx package in
// Node): just the fields ONNX Runtime reads.
import { bytesField as bytes, intField as int, messageField as msg, ONNX, onnxInitializer, onnxNode, onnxValueInfo } from '@detq/inference/onnx-protobuf';

const { FLOAT, INT64 } = ONNX.ELEM;
const node = (op: string, inputs: string[], outputs: string[]) => onnxNode(op, inputs, outputs, op.toLowerCase());

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
  // external_data {location}, data_location EXTERNAL (1).
  const scaleTensor = options.externalScaleFile
    ? msg(ONNX.GRAPH.INITIALIZER, int(ONNX.TENSOR.DIMS, 6), int(ONNX.TENSOR.DATA_TYPE, FLOAT), bytes(ONNX.TENSOR.NAME, 'scale'), msg(ONNX.TENSOR.EXTERNAL_DATA, bytes(1, 'location'), bytes(2, options.externalScaleFile)), int(ONNX.TENSOR.DATA_LOCATION, 1))
    : onnxInitializer('scale', FLOAT, [6], scales);
  const graph = msg(
    ONNX.MODEL.GRAPH,
    node('Reshape', ['images', 'shape'], ['rows']),
    node('Mul', ['rows', 'scale'], ['output0']),
    bytes(ONNX.GRAPH.NAME, 'end2end'),
    onnxInitializer('shape', INT64, [3], shape),
    scaleTensor,
    onnxValueInfo(ONNX.GRAPH.INPUT, 'images', input.elemType, input.dims),
    onnxValueInfo(ONNX.GRAPH.OUTPUT, 'output0', FLOAT, ['batch', 2, 6]),
  );
  const props = Object.entries(metadata).map(([k, v]) => msg(ONNX.MODEL.METADATA_PROPS, bytes(1, k), bytes(2, v)));
  const opset = msg(ONNX.MODEL.OPSET_IMPORT, bytes(ONNX.OPSET.DOMAIN, ''), int(ONNX.OPSET.VERSION, options.opset ?? 13));
  return Buffer.concat([int(ONNX.MODEL.IR_VERSION, 8), opset, graph, ...props]);
}

/** The scale column factors as the raw float32 bytes of the model's `scale` tensor. */
export function externalScale(scale: number[]): Buffer {
  const bytes = Buffer.alloc(24);
  scale.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return bytes;
}
