import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { jobCapsSchema, roleSchema, scopeSchema, type Access, type Role } from '@detq/core';
import type { PrincipalRecord } from '@detq/queue';

export const tokenEntrySchema = z.strictObject({
  /** The principal: owns the jobs and schedules the token makes. */
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (1-64)'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** URI scopes the token may read from and write to: `s3://bucket/prefix/*` or an exact URI, matched by segment. */
  scopes: z.array(scopeSchema).min(1),
  /** `admin` sees and cancels every tenant's jobs; `metrics` may read /metrics. */
  roles: z.array(roleSchema).default([]),
  /** Per-job caps above the deployment's defaults (DETQ_MAX_IMGSZ, DETQ_MAX_IMAGES, DETQ_MAX_OBJECT_BYTES). */
  caps: jobCapsSchema.default({}),
  /** The key its jobs' webhooks are signed with (HMAC-SHA256); a webhook needs one. */
  webhookSecret: z.string().min(16).optional(),
});
export type TokenEntry = z.infer<typeof tokenEntrySchema>;
export const tokensFileSchema = z.array(tokenEntrySchema).superRefine((entries, ctx) => {
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    if (seen.has(e.name)) ctx.addIssue({ code: 'custom', message: `token name ${e.name} appears twice`, path: [i, 'name'] });
    seen.add(e.name);
  });
});

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A new random token and the entry to put in DETQ_API_TOKENS_FILE (which holds only the token's hash). */
export function createToken(name: string, scopes: string[], roles: Role[] = []): { token: string; entry: TokenEntry } {
  const token = `detq_${randomBytes(32).toString('base64url')}`;
  const webhookSecret = `whsec_${randomBytes(24).toString('base64url')}`;
  return { token, entry: tokenEntrySchema.parse({ name, sha256: hashToken(token), scopes, roles, webhookSecret }) };
}

export function readTokensFile(path: string): TokenEntry[] {
  const parsed = tokensFileSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new Error(`${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** Removes the entry named `name` from a tokens file; false when there is none. */
export function revokeToken(path: string, name: string): boolean {
  const entries = readTokensFile(path);
  const kept = entries.filter((e) => e.name !== name);
  if (kept.length === entries.length) return false;
  writeFileSync(path, `${JSON.stringify(kept, null, 2)}\n`, { mode: 0o600 });
  return true;
}

/**
 * Bearer tokens by the sha256 of the token: the file never holds a usable secret, and a lookup by hash
 * does not leak through timing which prefix of a guess was right. `replace` swaps the whole set at
 * once (a reloaded file), so a request sees either the old tokens or the new ones.
 */
export class TokenStore {
  private byHash = new Map<string, TokenEntry>();

  constructor(entries: readonly TokenEntry[]) {
    this.replace(entries);
  }

  static fromFile(path: string): TokenStore {
    return new TokenStore(readTokensFile(path));
  }

  replace(entries: readonly TokenEntry[]): void {
    this.byHash = new Map(entries.map((e) => [e.sha256, e]));
  }

  /** The entry of an `Authorization: Bearer …` header, if the token is known. */
  verify(authorization: string | undefined): TokenEntry | undefined {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    return m ? this.byHash.get(hashToken(m[1]!)) : undefined;
  }

  /** What workers need to know of each principal, with caps resolved against the deployment defaults. */
  principals(defaults: Access['caps']): Map<string, PrincipalRecord> {
    return new Map(
      [...this.byHash.values()].map((e) => [
        e.name,
        { scopes: e.scopes, roles: e.roles, caps: { ...defaults, ...e.caps }, ...(e.webhookSecret && { webhookSecret: e.webhookSecret }) },
      ]),
    );
  }
}
