import { createHmac } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns';
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export interface WebhookPolicy {
  /** Hosts webhooks may call (DETQ_WEBHOOK_HOSTS); none by default, so no job can make the service call out. */
  hosts: readonly string[];
  /** Let webhooks reach loopback, private and link-local addresses (DETQ_WEBHOOK_ALLOW_PRIVATE). */
  allowPrivate: boolean;
}

export function isWebhookAllowed(url: string, hosts: readonly string[]): boolean {
  try {
    return hosts.includes(new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, ''));
  } catch {
    return false;
  }
}

/** Loopback, RFC 1918, CGNAT, link-local (cloud metadata), unique-local, unspecified and multicast. */
const PRIVATE = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16], ['224.0.0.0', 3]] as const)
  PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

export function isPrivateAddress(address: string): boolean {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4mapped) return PRIVATE.check(v4mapped[1]!, 'ipv4');
  return PRIVATE.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** Resolves a host the way the request will, and says why it may not be called (undefined when it may). */
export async function webhookAddressProblem(url: string, policy: WebhookPolicy): Promise<string | undefined> {
  if (!isWebhookAllowed(url, policy.hosts)) return 'host is not on the webhook allowlist';
  if (policy.allowPrivate) return undefined;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : await new Promise<string[]>((resolve) =>
    dnsLookup(host, { all: true }, (err, list) => resolve(err ? [] : list.map((a) => a.address))),
  );
  if (addresses.length === 0) return 'host does not resolve';
  const bad = addresses.find(isPrivateAddress);
  return bad ? `resolves to ${bad}, a private or link-local address` : undefined;
}

/**
 * The address check runs inside the connection's own lookup, so the address checked is the address
 * connected to (no second resolution a rebinding DNS server could answer differently).
 */
function checkedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    // Node asks for every address (`all`) when it races IPv4 and IPv6 (autoSelectFamily), else one.
    dnsLookup(hostname, { ...options, all: true }, (err, list) => {
      if (err) return callback(err, '', 0);
      const bad = allowPrivate ? undefined : list.find((a) => isPrivateAddress(a.address));
      if (bad) return callback(new Error(`${hostname} resolves to ${bad.address}, a private or link-local address`), '', 0);
      if (options.all) return (callback as unknown as (e: null, a: typeof list) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

export interface WebhookDelivery {
  url: string;
  body: unknown;
  /** Sent as Idempotency-Key: one per job end, so receivers can drop a repeat. */
  idempotencyKey: string;
  /** The job's token's webhook secret; the body is signed with it. */
  secret: string;
}

export const WEBHOOK_SIGNATURE_HEADER = 'detq-signature';
export const WEBHOOK_TIMESTAMP_HEADER = 'detq-timestamp';

/** `v1=` + hex HMAC-SHA256 of `<timestamp>.<body>`: a receiver recomputes it and rejects old timestamps. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

class PermanentWebhookError extends Error {}

function postOnce(d: WebhookDelivery, policy: WebhookPolicy, timeoutMs: number): Promise<void> {
  const url = new URL(d.url);
  const body = JSON.stringify(d.body);
  const timestamp = Math.floor(Date.now() / 1000);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && !policy.allowPrivate && isPrivateAddress(host))
    return Promise.reject(new PermanentWebhookError(`${host} is a private or link-local address`));
  const options: RequestOptions = {
    method: 'POST',
    timeout: timeoutMs,
    lookup: checkedLookup(policy.allowPrivate),
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'idempotency-key': d.idempotencyKey,
      [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
      [WEBHOOK_SIGNATURE_HEADER]: signWebhook(d.secret, timestamp, body),
    },
  };
  return new Promise((resolve, reject) => {
    // node:http never follows redirects: a 3xx is an answer like any other, and counts as a failure.
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) resolve();
      else if (status >= 500 || status === 429) reject(new Error(`answered ${status}`));
      else reject(new PermanentWebhookError(`answered ${status}${status < 400 ? ' (redirects are not followed)' : ''}`));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Best effort, bounded: up to `attempts` tries with exponential backoff on network errors, 5xx and 429;
 * other answers stop at once. The caller logs a failure; it never fails the job it reports.
 */
export async function sendWebhook(
  d: WebhookDelivery,
  policy: WebhookPolicy,
  options: { attempts?: number; backoffMs?: number; timeoutMs?: number } = {},
): Promise<void> {
  // Checked again at send time: the allowlist may have shrunk since the job was accepted.
  if (!isWebhookAllowed(d.url, policy.hosts)) throw new Error(`webhook host of ${d.url} is not on DETQ_WEBHOOK_HOSTS`);
  const attempts = options.attempts ?? 4;
  for (let attempt = 1; ; attempt++) {
    try {
      return await postOnce(d, policy, options.timeoutMs ?? 5000);
    } catch (err) {
      if (err instanceof PermanentWebhookError || attempt >= attempts) throw new Error(`webhook ${d.url}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, (options.backoffMs ?? 1000) * 2 ** (attempt - 1)));
    }
  }
}
