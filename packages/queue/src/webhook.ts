/** Hosts webhooks may call (DETQ_WEBHOOK_HOSTS, comma-separated); none by default, so no job can make the service call out. */
export function webhookHostsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.DETQ_WEBHOOK_HOSTS ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

export function isWebhookAllowed(url: string, hosts: readonly string[]): boolean {
  try {
    return hosts.includes(new URL(url).hostname.toLowerCase());
  } catch {
    return false;
  }
}

/** Best effort: a webhook that fails is logged by the caller, never fails the job it reports. */
export async function sendWebhook(url: string, body: unknown, hosts: readonly string[]): Promise<void> {
  // Checked again at send time: the allowlist may have shrunk since the job was accepted.
  if (!isWebhookAllowed(url, hosts)) throw new Error(`webhook host of ${url} is not on DETQ_WEBHOOK_HOSTS`);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    redirect: 'error',
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`webhook ${url} answered ${res.status}`);
}
