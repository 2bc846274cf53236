export * from './engine';
export * from './engine-factory';
export * from './onnx-metadata';
export * from './onnxruntime-engine';
export * from './yolo-postprocess';
export * from './native-loader';
export * from './tensorrt-engine';
export * from './torch-engine';
