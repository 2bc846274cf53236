import './jitless-zod';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, session, setUnauthorisedHandler } from './api';
import { EnqueuePage } from './enqueue-page';
import { GalleryPage } from './gallery-page';
import { JobPage } from './job-page';
import { JobsPage } from './jobs-page';
import { SchedulesPage } from './schedules-page';
import { html } from './ui';
import { WorkersPage } from './workers-page';

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function SignIn({ note, onSignedIn }: { note?: string; onSignedIn: () => void }) {
  const [error, setError] = useState(note);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = (new FormData(e.target as HTMLFormElement).get('token') as string).trim();
    setBusy(true);
    try {
      // Any authenticated read tells whether the API accepts the token.
      await api('/v1/jobs?limit=1', {}, token);
      session.signIn(token);
      onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'The API refused this token.' : String((err as Error).message));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <form class="card" onSubmit=${submit} aria-label="Sign in">
      <h1>detq</h1>
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" required autofocus aria-describedby="signin-error" />
      ${error && html`<p class="error" id="signin-error" role="alert">${error}</p>`}
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      <p class="muted small">The token stays in this tab's session storage and is sent as the bearer header.</p>
    </form>
  </main>`;
}

const NAV = [
  ['#/jobs', 'Jobs'],
  ['#/enqueue', 'New job'],
  ['#/schedules', 'Schedules'],
  ['#/workers', 'Workers'],
] as const;

function route(hash: string) {
  const [path = '', search = ''] = hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(search);
  const job = /^\/jobs\/([^/]+)(\/gallery)?$/.exec(path);
  if (job) return job[2] ? html`<${GalleryPage} id=${job[1]} query=${query} key=${hash} />` : html`<${JobPage} id=${job[1]} key=${job[1]} />`;
  if (path === '/enqueue') return html`<${EnqueuePage} />`;
  if (path === '/schedules') return html`<${SchedulesPage} />`;
  if (path === '/workers') return html`<${WorkersPage} />`;
  return html`<${JobsPage} />`;
}

function App() {
  const hash = useHash();
  const [signedIn, setSignedIn] = useState(Boolean(session.token()));
  const [note, setNote] = useState<string>();
  useEffect(
    () =>
      setUnauthorisedHandler(() => {
        session.signOut();
        setNote('The API no longer accepts this token; sign in again.');
        setSignedIn(false);
      }),
    [],
  );
  useEffect(() => {
    const title = NAV.find(([h]) => hash.startsWith(h))?.[1] ?? (hash.startsWith('#/jobs/') ? 'Job' : 'Jobs');
    document.title = `${title} · detq`;
  }, [hash]);
  if (!signedIn) return html`<${SignIn} note=${note} onSignedIn=${() => (setNote(undefined), setSignedIn(true))} />`;
  const current = NAV.find(([h]) => hash === h || (h === '#/jobs' && (hash === '' || hash.startsWith('#/jobs'))))?.[0];
  return html`<div class="layout">
    <a class="skip" href="#main" onClick=${(e: Event) => (e.preventDefault(), document.getElementById('main')?.focus())}>Skip to content</a>
    <header class="top">
      <span class="brand">detq</span>
      <nav aria-label="Main"><ul>${NAV.map(([h, label]) => html`<li><a href=${h} aria-current=${current === h ? 'page' : undefined}>${label}</a></li>`)}</ul></nav>
      <button type="button" class="link signout" onClick=${() => (session.signOut(), setSignedIn(false))}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">${route(hash)}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app')!);
