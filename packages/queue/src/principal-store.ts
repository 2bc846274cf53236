import type { RedisClient } from './config';
import type { Access } from '@detq/core';

/** What workers know of a principal: its access, and the secret its webhooks are signed with. */
export interface PrincipalRecord extends Access {
  webhookSecret?: string;
}

/**
 * The API's tokens, as workers need them (names, scopes, caps; never the bearer hashes): rewritten
 * whole each time the API loads its tokens file. Workers read it when a job is planned, so a schedule
 * made by a token whose scopes shrank, or that was revoked, cannot run outside them.
 */
export class PrincipalStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
  ) {}

  async replaceAll(records: ReadonlyMap<string, PrincipalRecord>): Promise<void> {
    const m = this.redis.multi().del(this.key);
    if (records.size) m.hset(this.key, Object.fromEntries([...records].map(([name, r]) => [name, JSON.stringify(r)])));
    await m.exec();
  }

  async get(principal: string): Promise<PrincipalRecord | undefined> {
    const json = await this.redis.hget(this.key, principal);
    return json ? (JSON.parse(json) as PrincipalRecord) : undefined;
  }
}
