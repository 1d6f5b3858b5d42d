// Rill's web console: the shell (who is in, navigation, login) around the
// pages. Plain ES modules and vendored Preact + htm: nothing to build,
// nothing fetched from anywhere but this server.
import { render } from './vendor/htm-preact-standalone.module.js';
import {
  html, api, useState, useEffect, usePoll, startHistory, stopHistory, setUnauthorizedHandler,
} from './lib.js';
import { Dashboard } from './pages/dashboard.js';
import { Stream } from './pages/stream.js';
import { Plugins } from './pages/plugins.js';
import { Config } from './pages/config.js';
import { Recordings } from './pages/recordings.js';

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => {
      setHash(location.hash);
      scrollTo(0, 0);
    };
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.replace(/^#\/?/, '');
}

function Login({ onIn, message }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(message || null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('POST', 'session', { token: token.trim() });
      setToken('');
      onIn();
    } catch (err) {
      setError(err.status === 401 ? 'Wrong token.' : err.message);
    }
    setBusy(false);
  };
  return html`<main class="login">
    <form onSubmit=${submit} data-page="login">
      <h1><img src="console/icon.svg" alt="" width="28" height="28" /> Rill</h1>
      <p class="muted">Log in with an API token (<code>http.api_token</code>, or one of <code>http.api_tokens</code>;
        a <code>read</code> token gives a read-only console).</p>
      <label for="token">API token</label>
      <input id="token" type="password" autocomplete="current-password" value=${token}
        onInput=${(e) => setToken(e.target.value)} required />
      ${error ? html`<p class="problem" role="alert">${error}</p>` : null}
      <button type="submit" class="primary" disabled=${busy || !token.trim()}>Log in</button>
    </form>
  </main>`;
}

function Console({ who, onOut }) {
  const route = useHash();
  const admin = who.role === 'admin';
  const plugins = usePoll(() => api('GET', 'plugins'), 2000);
  const [config, setConfig] = useState(null);
  // The recordings page exists when the server has their API.
  const recordings = (who.api_routes || []).includes('GET /api/v1/recordings');
  const loadConfig = () => api('GET', 'config').then(setConfig).catch(() => {});
  useEffect(() => {
    startHistory();
    loadConfig();
    return stopHistory;
  }, []);
  const logout = async () => {
    await api('DELETE', 'session').catch(() => {});
    onOut();
  };
  const list = plugins.data && plugins.data.plugins;
  let page;
  if (route.startsWith('streams/')) {
    const path = decodeURIComponent(route.slice('streams/'.length));
    page = html`<${Stream} key=${path} path=${path} admin=${admin} plugins=${list} config=${config} />`;
  } else if (route === 'plugins') {
    page = html`<${Plugins} plugins=${list} error=${plugins.error} admin=${admin} refresh=${plugins.refresh} />`;
  } else if (route === 'config') {
    page = html`<${Config} admin=${admin} onApplied=${() => {
      loadConfig();
      plugins.refresh();
    }} />`;
  } else if (route === 'recordings' && recordings) {
    page = html`<${Recordings} admin=${admin} />`;
  } else {
    page = html`<${Dashboard} />`;
  }
  const tab = route.startsWith('streams/') ? null : route;
  const link = (to, label) => html`<a href=${`#/${to}`} class=${tab === to ? 'active' : ''}>${label}</a>`;
  return html`<div class=${`shell ${admin ? 'admin' : 'read-only'}`}>
    <header class="top">
      <a class="brand" href="#/"><img src="console/icon.svg" alt="" width="24" height="24" /> Rill</a>
      <nav>
        ${link('', 'Dashboard')}
        ${link('plugins', 'Plugins')}
        ${link('config', 'Config')}
        ${recordings ? link('recordings', 'Recordings') : null}
      </nav>
      <span class="who">
        <span class=${`badge ${admin ? 'admin' : 'read'}`} data-role=${who.role}>${admin ? 'admin' : 'read-only'}</span>
        ${who.via === 'session' ? html`<button type="button" class="small link" data-logout onClick=${logout}>Log out</button>` : null}
      </span>
    </header>
    <main>${page}</main>
  </div>`;
}

function App() {
  // checking | login | in | refused
  const [state, setState] = useState({ s: 'checking' });
  const check = async () => {
    try {
      const who = await api('GET', 'session');
      setState(who.role ? { s: 'in', who } : { s: 'login' });
    } catch (e) {
      if (e.status === 401) setState({ s: 'login' });
      else setState({ s: 'refused', message: e.message });
    }
  };
  useEffect(() => {
    setUnauthorizedHandler(() => setState({ s: 'login', message: 'Your session ended: log in again.' }));
    check();
  }, []);
  if (state.s === 'checking') return html`<main class="login"><p class="muted">Loading…</p></main>`;
  if (state.s === 'login') return html`<${Login} onIn=${check} message=${state.message} />`;
  if (state.s === 'refused') {
    return html`<main class="login"><div>
      <h1>Rill</h1>
      <p class="problem" role="alert">${state.message}</p>
      <p class="muted">Set an API token (<code>http.api_token</code>) to use the console from another machine,
        or open it on the server itself.</p>
    </div></main>`;
  }
  return html`<${Console} who=${state.who} onOut=${() => {
    location.hash = '#/';
    setState({ s: 'login' });
  }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
