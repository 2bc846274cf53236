export * from './coco';
export * from './jsonl';
export * from './label-studio';
export * from './output-writer';
export * from './yolo-txt';
export * from './evaluate';
