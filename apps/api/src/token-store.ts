import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const tokenEntrySchema = z.strictObject({
  name: z.string().min(1).max(64),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** URI patterns the token may read from and write to: `s3://bucket/prefix/*` or an exact URI. */
  scopes: z.array(z.string().regex(/^s3:\/\//, 'scopes are s3:// patterns')).min(1),
});
export type TokenEntry = z.infer<typeof tokenEntrySchema>;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A new random token and the entry to put in DETQ_API_TOKENS_FILE (which only ever holds the hash). */
export function createToken(name: string, scopes: string[]): { token: string; entry: TokenEntry } {
  const token = `detq_${randomBytes(32).toString('base64url')}`;
  return { token, entry: tokenEntrySchema.parse({ name, sha256: hashToken(token), scopes }) };
}

/** Whether a URI lies inside a scope pattern (a trailing `*` matches any suffix; otherwise exact). */
export function inScope(uri: string, scopes: readonly string[]): boolean {
  return scopes.some((s) => (s.endsWith('*') ? uri.startsWith(s.slice(0, -1)) : uri === s));
}

/**
 * Bearer tokens by the sha256 of the token: the file never holds a usable secret, and a lookup by hash
 * does not leak through timing which prefix of a guess was right.
 */
export class TokenStore {
  private readonly byHash: Map<string, TokenEntry>;

  constructor(entries: readonly TokenEntry[]) {
    this.byHash = new Map(entries.map((e) => [e.sha256, e]));
  }

  static fromFile(path: string): TokenStore {
    const parsed = z.array(tokenEntrySchema).safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success) throw new Error(`${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    return new TokenStore(parsed.data);
  }

  /** The entry of an `Authorization: Bearer …` header, if the token is known. */
  verify(authorization: string | undefined): TokenEntry | undefined {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    return m ? this.byHash.get(hashToken(m[1]!)) : undefined;
  }
}
