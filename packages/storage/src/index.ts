export * from './file-store';
export * from './object-store';
export * from './routing-store';
export * from './s3-store';
export * from './s3-uri';
export * from './transient';
