import { bytesField, intField, messageField, ONNX, onnxInitializer, onnxNode, onnxValueInfo, WIRE_LEN, wireFields, type WireField } from './onnx-protobuf';

// What onnxruntime-cpu changes in a model before loading it, so that work detq did in JS on the main
// thread runs in ONNX Runtime's vectorised kernels on the session's threads instead: the input conversion
// (withUint8HwcInput) and the best-class reduction NMS starts from (withBestClassOutput). Both add nodes
// and copy every other field of the model unchanged.

const { MODEL, OPSET, GRAPH, TENSOR, VALUE_INFO, TENSOR_TYPE, DIM, ATTR, ATTR_TYPE, ELEM } = ONNX;
const ELEM_TYPE_NAMES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 10: 'float16', 11: 'float64', 16: 'bfloat16' };

/** A model whose input cannot take detq's frames. */
export class ModelInputError extends Error {}

/** A dimension: a number when fixed, else its name ('?' when the model gives neither). */
export type Dim = number | string;

const payload = (msg: Buffer, f: WireField) => msg.subarray(f.valueStart, f.end);
/** The payload of a message's (first) length-delimited field `field`; empty when it has none. */
function sub(msg: Buffer, field: number): Buffer {
  const f = [...wireFields(msg)].find((g) => g.field === field && g.wire === WIRE_LEN);
  return f ? payload(msg, f) : Buffer.alloc(0);
}
const str = (msg: Buffer, field: number) => sub(msg, field).toString('utf8');

interface Graph {
  field: WireField;
  bytes: Buffer;
  fields: WireField[];
}

function graphOf(model: Buffer): Graph {
  const field = [...wireFields(model)].find((f) => f.field === MODEL.GRAPH && f.wire === WIRE_LEN);
  if (!field) throw new ModelInputError('the model has no graph');
  const bytes = payload(model, field);
  return { field, bytes, fields: [...wireFields(bytes)] };
}

/** The model with its graph's fields replaced by `parts`. */
function withGraph(model: Buffer, graph: Graph, parts: Buffer[]): Buffer {
  return Buffer.concat([model.subarray(0, graph.field.start), messageField(MODEL.GRAPH, ...parts), model.subarray(graph.field.end)]);
}

/** A tensor ValueInfoProto: name, element type, and each dimension's raw bytes and value. */
function describeValue(info: Buffer) {
  const tensor = sub(sub(info, VALUE_INFO.TYPE), ONNX.TYPE.TENSOR);
  const shape = sub(tensor, TENSOR_TYPE.SHAPE);
  const rawDims = [...wireFields(shape)].filter((f) => f.field === ONNX.SHAPE.DIM).map((f) => payload(shape, f));
  const dims = rawDims.map((dim): Dim => {
    const d = [...wireFields(dim)].find((g) => g.field === DIM.VALUE || g.field === DIM.PARAM);
    if (!d) return '?';
    if (d.field === DIM.PARAM) return payload(dim, d).toString('utf8');
    // A negative value (an int64 as a 10-byte varint) or a zero is no fixed size.
    return d.value > 0 && d.value <= Number.MAX_SAFE_INTEGER ? d.value : '?';
  });
  return { name: str(info, VALUE_INFO.NAME), elemType: [...wireFields(tensor)].find((f) => f.field === TENSOR_TYPE.ELEM_TYPE)?.value ?? 0, rawDims, dims };
}

// The nodes detq adds are named after their output.
const node = (op: string, inputs: string[], output: string, ...attributes: Buffer[]) => onnxNode(op, inputs, [output], `detq_${output}`, ...attributes);
const intAttr = (name: string, v: number) => messageField(ONNX.NODE.ATTRIBUTE, bytesField(ATTR.NAME, name), intField(ATTR.I, v), intField(ATTR.TYPE, ATTR_TYPE.INT));
const intsAttr = (name: string, vs: number[]) => messageField(ONNX.NODE.ATTRIBUTE, bytesField(ATTR.NAME, name), ...vs.map((v) => intField(ATTR.INTS, v)), intField(ATTR.TYPE, ATTR_TYPE.INTS));
/** A constant initializer: float32 or int64 values. */
function initializer(name: string, elemType: typeof ELEM.FLOAT | typeof ELEM.INT64, values: number[], dims: number[]): Buffer {
  const raw = Buffer.alloc(values.length * (elemType === ELEM.FLOAT ? 4 : 8));
  values.forEach((v, i) => (elemType === ELEM.FLOAT ? raw.writeFloatLE(v, i * 4) : raw.writeBigInt64LE(BigInt(v), i * 8)));
  return onnxInitializer(name, elemType, dims, raw);
}

export interface Uint8InputModel {
  /** The edited model, for InferenceSession.create. */
  model: Buffer;
  /** The original input's dims, [batch, 3, height, width]. */
  dims: Dim[];
}

/**
 * Moves detq's uint8 -> float conversion into the model: the float32 [N,3,H,W] input becomes a uint8
 * [N,H,W,3] one (the letterboxed RGB as libvips writes it), followed by Transpose -> Cast -> Div(255)
 * nodes that produce the original input. The JS loop it replaces cost ~5 ms of CPU per image on the main
 * thread, competing with inference for the cores; frames also travel to the engine thread at a quarter
 * of the size.
 */
export function withUint8HwcInput(model: Buffer): Uint8InputModel {
  const graph = graphOf(model);
  // The image input is the first input no initializer fills (older exports list weights as inputs too).
  const weights = new Set(graph.fields.filter((f) => f.field === GRAPH.INITIALIZER).map((f) => str(payload(graph.bytes, f), TENSOR.NAME)));
  const inputField = graph.fields.find((f) => f.field === GRAPH.INPUT && !weights.has(str(payload(graph.bytes, f), VALUE_INFO.NAME)));
  if (!inputField) throw new ModelInputError('the model has no input');
  const { name, elemType, rawDims, dims } = describeValue(payload(graph.bytes, inputField));
  if (dims.length !== 4 || dims[1] !== 3) throw new ModelInputError(`input shape [${dims.join(',')}] is not [batch,3,height,width]`);
  if (elemType !== ELEM.FLOAT) throw new ModelInputError(`input type ${ELEM_TYPE_NAMES[elemType] ?? elemType} is not float32`);

  // Added names start with detq_, which no exporter uses.
  const raw = `detq_${name}_uint8_nhwc`;
  const parts: Buffer[] = [
    // Nodes first, so the graph stays in topological order.
    node('Transpose', [raw], `detq_${name}_uint8_nchw`, intsAttr('perm', [0, 3, 1, 2])),
    node('Cast', [`detq_${name}_uint8_nchw`], `detq_${name}_float_nchw`, intAttr('to', ELEM.FLOAT)),
    node('Div', [`detq_${name}_float_nchw`, `detq_${name}_255`], name),
    initializer(`detq_${name}_255`, ELEM.FLOAT, [255], []),
  ];
  const input = onnxValueInfo(GRAPH.INPUT, raw, ELEM.UINT8, [0, 2, 3, 1].map((i) => rawDims[i]!));
  for (const f of graph.fields) parts.push(f === inputField ? input : graph.bytes.subarray(f.start, f.end));
  return { model: withGraph(model, graph, parts), dims };
}

/** The dims of the model's first output. */
export function onnxOutputDims(model: Buffer): Dim[] {
  const graph = graphOf(model);
  const output = graph.fields.find((f) => f.field === GRAPH.OUTPUT);
  return output ? describeValue(payload(graph.bytes, output)).dims : [];
}

/** The model's version of the default (ai.onnx) operator set; 0 when it declares none. */
export function onnxOpset(model: Buffer): number {
  for (const f of wireFields(model)) {
    if (f.field !== MODEL.OPSET_IMPORT || f.wire !== WIRE_LEN) continue;
    const entry = payload(model, f);
    const domain = str(entry, OPSET.DOMAIN);
    if (domain === '' || domain === 'ai.onnx') return [...wireFields(entry)].find((g) => g.field === OPSET.VERSION)?.value ?? 0;
  }
  return 0;
}

/** Operator set the best-class output needs (GatherElements). */
const BEST_CLASS_OPSET = 11;

/**
 * Adds a second output to a raw YOLO head [N, 4 + classes, anchors]: [N, 6, anchors], the four box rows,
 * each anchor's best class score and that class (ArgMax: the lowest class on ties, as torch's max). NMS
 * without multi-label needs only these (postprocessBestClass), so the main thread reads 6 rows instead
 * of 84 and receives a 14th of the bytes. Returns the new output's name with the model, or undefined for
 * a model whose operator set predates the operators it needs (the full head serves then).
 */
export function withBestClassOutput(model: Buffer): { model: Buffer; output: string } | undefined {
  if (onnxOpset(model) < BEST_CLASS_OPSET) return undefined;
  const graph = graphOf(model);
  const outputField = graph.fields.find((f) => f.field === GRAPH.OUTPUT);
  if (!outputField) throw new ModelInputError('the model has no output');
  const { name, rawDims } = describeValue(payload(graph.bytes, outputField));
  if (rawDims.length !== 3) throw new ModelInputError(`output ${name} has ${rawDims.length} dimensions, not [batch,4+classes,anchors]`);
  const best = `detq_${name}_best_class`;
  const k = (suffix: string) => `detq_${name}_${suffix}`;
  const parts = graph.fields.map((f) => graph.bytes.subarray(f.start, f.end));
  parts.push(
    initializer(k('0'), ELEM.INT64, [0], [1]),
    initializer(k('4'), ELEM.INT64, [4], [1]),
    initializer(k('end'), ELEM.INT64, [2 ** 53 - 1], [1]),
    initializer(k('axis1'), ELEM.INT64, [1], [1]),
    node('Slice', [name, k('0'), k('4'), k('axis1')], k('boxes')),
    node('Slice', [name, k('4'), k('end'), k('axis1')], k('scores')),
    node('ArgMax', [k('scores')], k('class_index'), intAttr('axis', 1), intAttr('keepdims', 1)),
    node('GatherElements', [k('scores'), k('class_index')], k('best_score'), intAttr('axis', 1)),
    node('Cast', [k('class_index')], k('class'), intAttr('to', ELEM.FLOAT)),
    node('Concat', [k('boxes'), k('best_score'), k('class')], best, intAttr('axis', 1)),
    onnxValueInfo(GRAPH.OUTPUT, best, ELEM.FLOAT, [rawDims[0]!, 6, rawDims[2]!]),
  );
  return { model: withGraph(model, graph, parts), output: best };
}
