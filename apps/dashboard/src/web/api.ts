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

async function request(path: string, init: RequestInit = {}, token = session.token()): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(path, { ...init, headers });
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
  const res = await request(path, { signal });
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
