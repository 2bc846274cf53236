// The protobuf wire format, as far as detq reads and edits ONNX models: fields are walked and spliced
// by their byte ranges, so whatever detq does not touch (the weights, metadata, fields newer than this
// code) is copied byte for byte. A schema-based codec (protobufjs with onnx.proto) would decode and
// re-encode the whole model and drop every field its copy of the schema does not know.

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Reads a varint at `pos`: its value (exact up to 2^53) and the position after it. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [result, pos];
    shift += 7;
  }
}

export interface WireField {
  field: number;
  wire: number;
  /** The whole field, tag included: buf.subarray(start, end) copies it unchanged. */
  start: number;
  end: number;
  /** A varint's value; a length-delimited field's payload is buf.subarray(valueStart, end). */
  value: number;
  valueStart: number;
}

/** The fields of one message, in order. */
export function* wireFields(buf: Uint8Array, start = 0, end = buf.length): Generator<WireField> {
  let pos = start;
  while (pos < end) {
    const [tag, p1] = readVarint(buf, pos);
    const wire = tag & 7;
    let value = 0;
    let valueStart = p1;
    let next: number;
    if (wire === WIRE_VARINT) [value, next] = readVarint(buf, p1);
    else if (wire === WIRE_LEN) {
      [value, valueStart] = readVarint(buf, p1);
      next = valueStart + value;
    } else if (wire === WIRE_I64) next = p1 + 8;
    else if (wire === WIRE_I32) next = p1 + 4;
    else throw new Error(`unexpected protobuf wire type ${wire}`);
    if (next > end) throw new Error('truncated protobuf field');
    yield { field: tag >>> 3, wire, start: pos, end: next, value, valueStart };
    pos = next;
  }
}

export function encodeVarint(n: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}

const tag = (field: number, wire: number) => encodeVarint((field << 3) | wire);
export const intField = (field: number, n: number | bigint): Buffer => Buffer.concat([tag(field, WIRE_VARINT), encodeVarint(n)]);
export function bytesField(field: number, b: Uint8Array | string): Buffer {
  const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  return Buffer.concat([tag(field, WIRE_LEN), encodeVarint(buf.length), buf]);
}
export const messageField = (field: number, ...parts: Uint8Array[]): Buffer => bytesField(field, Buffer.concat(parts));

// ONNX field numbers (onnx.proto) and the messages detq and its tests build from them.
export const ONNX = {
  MODEL: { IR_VERSION: 1, GRAPH: 7, OPSET_IMPORT: 8, METADATA_PROPS: 14 },
  OPSET: { DOMAIN: 1, VERSION: 2 },
  GRAPH: { NODE: 1, NAME: 2, INITIALIZER: 5, INPUT: 11, OUTPUT: 12 },
  NODE: { INPUT: 1, OUTPUT: 2, NAME: 3, OP_TYPE: 4, ATTRIBUTE: 5 },
  ATTR: { NAME: 1, I: 3, INTS: 8, TYPE: 20 },
  ATTR_TYPE: { INT: 2, INTS: 7 },
  VALUE_INFO: { NAME: 1, TYPE: 2 },
  TYPE: { TENSOR: 1 },
  TENSOR_TYPE: { ELEM_TYPE: 1, SHAPE: 2 },
  SHAPE: { DIM: 1 },
  DIM: { VALUE: 1, PARAM: 2 },
  TENSOR: { DIMS: 1, DATA_TYPE: 2, NAME: 8, RAW_DATA: 9, EXTERNAL_DATA: 13, DATA_LOCATION: 14 },
  ELEM: { FLOAT: 1, UINT8: 2, INT64: 7 },
} as const;

/** A graph node (NodeProto). */
export const onnxNode = (op: string, inputs: string[], outputs: string[], name: string, ...attributes: Uint8Array[]): Buffer =>
  messageField(
    ONNX.GRAPH.NODE,
    ...inputs.map((i) => bytesField(ONNX.NODE.INPUT, i)),
    ...outputs.map((o) => bytesField(ONNX.NODE.OUTPUT, o)),
    bytesField(ONNX.NODE.NAME, name),
    bytesField(ONNX.NODE.OP_TYPE, op),
    ...attributes,
  );

/** A graph initializer (TensorProto) with its data inline. */
export const onnxInitializer = (name: string, elemType: number, dims: number[], raw: Uint8Array): Buffer =>
  messageField(ONNX.GRAPH.INITIALIZER, ...dims.map((d) => intField(ONNX.TENSOR.DIMS, d)), intField(ONNX.TENSOR.DATA_TYPE, elemType), bytesField(ONNX.TENSOR.NAME, name), bytesField(ONNX.TENSOR.RAW_DATA, raw));

/**
 * A graph input or output (ValueInfoProto, `field` ONNX.GRAPH.INPUT or OUTPUT) of a tensor type; each
 * dimension a size, a name, or an encoded Dimension copied from another model.
 */
export function onnxValueInfo(field: number, name: string, elemType: number, dims: (number | string | Uint8Array)[]): Buffer {
  const dim = (d: number | string | Uint8Array) =>
    messageField(ONNX.SHAPE.DIM, typeof d === 'number' ? intField(ONNX.DIM.VALUE, d) : typeof d === 'string' ? bytesField(ONNX.DIM.PARAM, d) : d);
  return messageField(
    field,
    bytesField(ONNX.VALUE_INFO.NAME, name),
    messageField(ONNX.VALUE_INFO.TYPE, messageField(ONNX.TYPE.TENSOR, intField(ONNX.TENSOR_TYPE.ELEM_TYPE, elemType), messageField(ONNX.TENSOR_TYPE.SHAPE, ...dims.map(dim)))),
  );
}
