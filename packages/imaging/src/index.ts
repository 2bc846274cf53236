export * from './image-decoder';
export * from './jpeg-header';
export * from './letterbox-frame';
export * from './resize';
export * from './preview';
