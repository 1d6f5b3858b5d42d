// Plugins: version, ABI, generation, state, last error, sessions (and those
// still draining on old generations), with reload and drain for admins.
import { html, api, useState, Problem, fmtSince } from '../lib.js';

function Plugin({ p, admin, onChanged }) {
  const [msg, setMsg] = useState(null);
  const [busy, setBusy] = useState(false);
  const act = async (what) => {
    setBusy(true);
    setMsg(null);
    try {
      const r = await api('POST', `plugins/${encodeURIComponent(p.name)}/${what}`);
      if (what === 'reload') {
        setMsg(r.reloaded
          ? { ok: `Reloaded: generation ${r.plugin ? r.plugin.generation : '?'} serves now.` }
          : { ok: 'Unchanged: the file holds the code already running.' });
      } else {
        setMsg({ ok: `Closing ${r.closing_sessions} session(s) of old generations.` });
      }
    } catch (e) {
      setMsg({ error: e });
    }
    setBusy(false);
    onChanged();
  };
  const draining = p.draining_generations || [];
  return html`<article class="plugin card" data-plugin=${p.name}>
    <header>
      <h2>${p.name} <span class="muted">${p.version}</span></h2>
      <span class=${`badge ${p.state}`} data-state>${p.state}</span>
    </header>
    ${p.description ? html`<p class="muted">${p.description}</p>` : null}
    <dl>
      <dt>Generation</dt><dd data-generation>${p.generation}</dd>
      <dt>ABI</dt><dd>${p.abi}${p.layout_checked ? ' (layout checked)' : ''}</dd>
      <dt>Sessions</dt><dd data-sessions>${p.sessions}</dd>
      <dt>Draining</dt><dd data-draining>${draining.length
        ? draining.map((d) => `generation ${d.generation}: ${d.sessions} session(s)`).join(', ') : 'none'}</dd>
      <dt>Loaded</dt><dd>${fmtSince(p.loaded_at)} ago</dd>
      <dt>File</dt><dd class="wrap">${p.file}</dd>
      <dt>SHA-256</dt><dd class="wrap mono">${p.file_hash}</dd>
      ${p.reload_failures ? html`<dt>Reload failures</dt><dd>${p.reload_failures}</dd>` : null}
    </dl>
    ${p.last_error ? html`<p class="problem" data-last-error>Last error: ${p.last_error}</p>` : null}
    ${msg && msg.ok ? html`<p class="ok" role="status">${msg.ok}</p>` : null}
    <${Problem} error=${msg && msg.error} />
    ${admin ? html`<div class="actions">
      <button type="button" data-reload disabled=${busy} onClick=${() => act('reload')}>Reload</button>
      ${draining.length ? html`<button type="button" class="danger" data-drain disabled=${busy} onClick=${() => act('drain')}>Close draining sessions</button>` : null}
    </div>` : null}
  </article>`;
}

export function Plugins({ plugins, error, admin, refresh }) {
  return html`<section data-page="plugins">
    <h1>Plugins</h1>
    <p class="muted">A plugin whose file changes is reloaded by itself; Reload loads the file again now
      (after fixing what made it fail, say). Sessions opened before a reload stay on their generation until they end.</p>
    <${Problem} error=${error} />
    <div class="plugins">
      ${(plugins || []).map((p) => html`<${Plugin} key=${p.name} p=${p} admin=${admin} onChanged=${refresh} />`)}
    </div>
  </section>`;
}
