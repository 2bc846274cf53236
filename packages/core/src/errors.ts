/**
 * Stable per-image error codes (documented in README "Errors"). A per-image error never stops a run.
 */
export const IMAGE_ERROR_CODES = {
  EMPTY_FILE: 'the file has zero bytes',
  FILE_TOO_LARGE: 'the file is larger than the byte limit',
  NOT_AN_IMAGE: 'the bytes are not a recognised image format',
  UNSUPPORTED_FORMAT: 'a recognised format detq does not accept (SVG, PDF, HEIC, ...)',
  TOO_MANY_PIXELS: 'the header declares more pixels than the pixel limit',
  TRUNCATED: 'the image data ends early',
  CORRUPT: 'the image data is damaged and cannot be decoded',
  READ_FAILED: 'the object could not be read from storage',
  BAD_KEY: 'the input path cannot be an output key (a `..` segment, backslash or NUL, also percent-encoded): nothing is written for it',
  INFERENCE_FAILED: 'the engine failed on the batch holding this image',
  CHUNK_FAILED: 'distributed jobs: the chunk holding this image failed after every retry (the message says why)',
  CANCELLED: 'distributed jobs: the job was cancelled before this image was labelled',
  FORBIDDEN: "distributed jobs: the image (a manifest line) lies outside the scopes of the job's token",
} as const;
export type ImageErrorCode = keyof typeof IMAGE_ERROR_CODES;

/** Process exit codes of the CLI for fatal problems (a run with per-image errors still exits 0). */
export const EXIT_CODES = {
  OK: 0,
  UNEXPECTED: 1,
  USAGE: 2,
  BAD_MODEL: 3,
  OUTPUT_FAILED: 4,
  INPUT_NOT_FOUND: 5,
  ENGINE_UNAVAILABLE: 6,
} as const;
export type ExitCodeName = keyof typeof EXIT_CODES;

/** An error with a stable machine-readable code. */
export class DetqError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DetqError';
  }
}

/** A per-image failure: recorded in that image's record, the run goes on. */
export class ImageError extends DetqError {
  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ImageError';
  }
}

/** A failure that ends the run, with the process exit code it maps to. */
export class FatalError extends DetqError {
  constructor(
    readonly exit: ExitCodeName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(exit, message, options);
    this.name = 'FatalError';
  }
}

/**
 * The engine itself failed (a dead runtime thread, a sticky device error, a closed batcher, a missed
 * deadline), not one image: the chunk fails and is retried on another worker, and a worker that keeps
 * seeing these stops taking work. Never recorded as an image's error.
 */
export class EngineFault extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineFault';
  }
}
