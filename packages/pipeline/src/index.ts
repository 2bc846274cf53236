export * from './batcher';
export * from './frame-preparer';
export * from './input-lister';
export * from './label-stream';
export * from './model-resolver';
export * from './open-engine';
export * from './records';
export * from './local-run';
