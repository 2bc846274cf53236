/**
 * Canonical s3:// URIs: parsed once, so every check (scopes, caps, output keys) works on the same
 * segments the store will use. Anything a path-normalising server could read differently from what
 * we checked is refused rather than "cleaned": `.`/`..` segments, empty segments, percent-encoded
 * dots, slashes and backslashes, backslashes themselves, and control characters.
 */
export interface S3UriParts {
  bucket: string;
  /** Key segments; never empty strings, never `.` or `..`. */
  segments: string[];
  /** The URI names a prefix (`s3://b/dir/`) rather than one object. */
  prefix: boolean;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{0,62}$/;
// C0 controls, DEL and C1 controls: printed raw by a terminal they can rewrite what an operator sees.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const ENCODED_TRAVERSAL = /%(2e|2f|5c)/i;

export type UriCheck = { ok: true; uri: S3UriParts } | { ok: false; reason: string };

/** Parses a URI, or says why it is refused (the reason reads after the field name). */
export function checkS3Uri(uri: string): UriCheck {
  const fail = (reason: string): UriCheck => ({ ok: false, reason });
  if (CONTROL.test(uri)) return fail('must not contain control characters');
  if (!uri.startsWith('s3://')) return fail('must be an s3://bucket/key URI (only s3:// is accepted)');
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (!BUCKET.test(bucket)) return fail('must be an s3://bucket/key URI with a valid bucket name');
  const key = slash < 0 ? '' : rest.slice(slash + 1);
  if (ENCODED_TRAVERSAL.test(key)) return fail('must not contain percent-encoded dots, slashes or backslashes');
  if (key.includes('\\')) return fail('must not contain backslashes');
  if (key === '') return { ok: true, uri: { bucket, segments: [], prefix: true } };
  const prefix = key.endsWith('/');
  const segments = (prefix ? key.slice(0, -1) : key).split('/');
  if (segments.some((s) => s === '')) return fail('must not contain empty path segments (//)');
  if (segments.some((s) => s === '.' || s === '..')) return fail('must not contain . or .. segments');
  return { ok: true, uri: { bucket, segments, prefix } };
}

/** Parses a URI that is already known to be valid (it passed s3UriSchema); throws otherwise. */
export function parseCanonicalS3Uri(uri: string): S3UriParts {
  const r = checkS3Uri(uri);
  if (!r.ok) throw new Error(`${uri}: ${r.reason}`);
  return r.uri;
}

/**
 * A token scope: an exact object URI, or a prefix `s3://bucket/dir/*` (`s3://bucket/*` for a whole
 * bucket). The `*` stands for whole segments only: `s3://out/alice/*` never covers `s3://out/alice2/x`.
 */
export function checkScope(scope: string): string | undefined {
  const wildcard = scope.endsWith('/*');
  const r = checkS3Uri(wildcard ? scope.slice(0, -1) : scope);
  if (!r.ok) return r.reason;
  if (scope.slice(0, wildcard ? -2 : undefined).includes('*')) return 'a * may only end a scope, as /*';
  if (!wildcard && r.uri.prefix) return 'a prefix scope ends in /*';
  return undefined;
}

/** Whether a (valid) URI lies inside one of the scopes, compared segment by segment. */
export function inScope(uri: string, scopes: readonly string[]): boolean {
  const target = checkS3Uri(uri);
  if (!target.ok) return false;
  const t = target.uri;
  return scopes.some((scope) => {
    const wildcard = scope.endsWith('/*');
    const s = checkS3Uri(wildcard ? scope.slice(0, -1) : scope);
    if (!s.ok || s.uri.bucket !== t.bucket) return false;
    const segs = s.uri.segments;
    if (!wildcard) return !t.prefix && segs.length === t.segments.length && segs.every((x, i) => x === t.segments[i]);
    return segs.length <= t.segments.length && segs.every((x, i) => x === t.segments[i]);
  });
}
