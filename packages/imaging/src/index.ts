export * from './image-decoder';
export * from './letterbox-frame';
export * from './resize';
export * from './preview';
