export * from './errors';
export * from './letterbox';
export * from './paths';
export * from './schemas';
