export * from './engine';
export * from './engine-factory';
export * from './onnx-metadata';
export * from './onnxruntime-engine';
export * from './yolo-postprocess';
