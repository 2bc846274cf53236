import pLimit from 'p-limit';

/** The dashboard's only door to the API: the session's bearer token on every request. */

const TOKEN_KEY = 'detq.token';

export const session = {
  token: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token: string) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => sessionStorage.removeItem(TOKEN_KEY),
};

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields: FieldError[] = [],
  ) {
    super(message);
  }
}

/** Called when the API stops accepting the session's token (revoked, or a restart with new tokens). */
let onUnauthorised: () => void = () => {};
export const setUnauthorisedHandler = (fn: () => void) => (onUnauthorised = fn);

/**
 * The API limits requests per token (@fastify/rate-limit, DETQ_RATE_LIMIT), and a gallery page alone
 * asks for two dozen thumbnails. Requests go out a few at a time; when the standard x-ratelimit-*
 * headers say fewer requests are left than may be in flight, the next ones wait for the window to reset.
 */
const MAX_IN_FLIGHT = 4;
const limit = pLimit(MAX_IN_FLIGHT);
let resumeAt = 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function paced(path: string, init: RequestInit): Promise<Response> {
  const wait = resumeAt - Date.now();
  if (wait > 0) await sleep(wait);
  const res = await fetch(path, init);
  const left = Number(res.headers.get('x-ratelimit-remaining') ?? Infinity);
  if (left < MAX_IN_FLIGHT || res.status === 429) {
    const seconds = Number(res.headers.get('retry-after') ?? res.headers.get('x-ratelimit-reset') ?? 1);
    resumeAt = Math.max(resumeAt, Date.now() + seconds * 1000);
  }
  return res;
}

async function request(path: string, init: RequestInit = {}, token = session.token(), stream = false): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  // A stream holds its connection for as long as the job runs: it never takes one of the slots.
  const res = stream ? await paced(path, { ...init, headers }) : await limit(() => paced(path, { ...init, headers }));
  if (res.ok) return res;
  const body = (await res.json().catch(() => ({}))) as { error?: string; fields?: FieldError[] };
  if (res.status === 401 && token === session.token()) onUnauthorised();
  throw new ApiError(res.status, body.error ?? `${res.status} ${res.statusText}`, body.fields ?? []);
}

export async function api<T>(path: string, init: RequestInit = {}, token?: string): Promise<T> {
  const res = await request(path, init, token);
  return (res.status === 204 ? undefined : await res.json()) as T;
}

/** A blob: URL of an authorised binary answer (img and a elements cannot send the bearer header). */
export async function blobUrl(path: string, signal?: AbortSignal): Promise<string> {
  const res = await request(path, signal ? { signal } : {});
  return URL.createObjectURL(await res.blob());
}

/**
 * Follows a job's server-sent events. EventSource cannot send a bearer header, so the stream is read
 * with fetch. Resolves when the stream ends (the job ended) or `signal` aborts.
 */
export async function followEvents<T>(path: string, onEvent: (event: string, data: T) => void, signal: AbortSignal): Promise<void> {
  const res = await request(path, { signal }, session.token(), true);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (data !== undefined) onEvent(event, JSON.parse(data) as T);
    }
  }
}
