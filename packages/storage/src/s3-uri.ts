import { DetqError } from '@detq/core';

export interface S3Location {
  bucket: string;
  key: string;
}

export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m || !m[1]) throw new DetqError('BAD_URI', `not an s3:// URI: ${uri}`);
  return { bucket: m[1], key: m[2] ?? '' };
}
