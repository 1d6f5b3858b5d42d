// One stream: its publisher, tracks and codecs, a live preview, its players
// (each with a kick button for admins) and the URLs to publish and play it.
import {
  html, api, usePoll, useState, Problem, Copy, fmtBits, fmtBytes, fmtSince, codecName,
} from '../lib.js';
import { Preview } from '../preview.js';
import { streamUrls, previewProtocols } from '../urls.js';

const enc = (path) => path.split('/').map(encodeURIComponent).join('/');

function Tracks({ tracks }) {
  if (!tracks || !tracks.length) return html`<p class="muted">No tracks yet.</p>`;
  return html`<table class="list" data-tracks>
    <thead><tr><th>#</th><th>Kind</th><th>Codec</th><th>Format</th><th>Frames</th><th>Bitrate</th></tr></thead>
    <tbody>${tracks.map((t) => html`<tr key=${t.id}>
      <td data-label="#">${t.id}</td>
      <td data-label="Kind">${t.kind}</td>
      <td data-label="Codec"><span>${codecName(t.codec)} <span class="muted">${t.codec}</span></span></td>
      <td data-label="Format">${[
        t.width && t.height ? `${t.width}×${t.height}` : null,
        t.sample_rate ? `${t.sample_rate} Hz` : null,
        t.channels ? `${t.channels} ch` : null,
      ].filter(Boolean).join(', ') || '–'}</td>
      <td data-label="Frames">${t.frames}</td>
      <td data-label="Bitrate">${fmtBits(t.bitrate_bps)}</td>
    </tr>`)}</tbody>
  </table>`;
}

function Players({ subs, admin, onKick }) {
  if (!subs.length) return html`<p class="muted">Nobody is watching.</p>`;
  return html`<table class="list" data-players>
    <thead><tr><th>Id</th><th>Protocol</th><th>From</th><th>Since</th><th>Bitrate</th><th>Sent</th><th>Drops</th>${admin ? html`<th></th>` : null}</tr></thead>
    <tbody>${subs.map((s) => html`<tr key=${s.id} data-sub=${s.id}>
      <td data-label="Id">${s.id}</td>
      <td data-label="Protocol">${s.protocol}</td>
      <td data-label="From" class="wrap">${s.remote}</td>
      <td data-label="Since">${fmtSince(s.created)}</td>
      <td data-label="Bitrate">${fmtBits(s.bitrate_bps)}</td>
      <td data-label="Sent">${fmtBytes(s.bytes)}</td>
      <td data-label="Drops">${s.drops}</td>
      ${admin ? html`<td><button type="button" class="small danger" data-kick=${s.id} onClick=${() => onKick(s)}>Kick</button></td>` : null}
    </tr>`)}</tbody>
  </table>`;
}

export function Stream({ path, admin, plugins, config }) {
  const stream = usePoll(() => api('GET', `streams/${enc(path)}`), 1000, [path]);
  const subs = usePoll(() => api('GET', `streams/${enc(path)}/subscribers`), 1000, [path]);
  const [action, setAction] = useState(null);
  const s = stream.data;
  const urls = streamUrls(path, plugins, config);
  const kick = async (sub) => {
    setAction(null);
    try {
      await api('DELETE', `subscribers/${sub.id}`);
      setAction({ ok: `Player ${sub.id} (${sub.protocol}, ${sub.remote}) kicked.` });
    } catch (e) {
      setAction({ error: e });
    }
    subs.refresh();
  };
  const kickPublisher = async () => {
    setAction(null);
    try {
      await api('DELETE', `streams/${enc(path)}`);
      setAction({ ok: 'Publisher kicked: the stream waits for it to come back.' });
    } catch (e) {
      setAction({ error: e });
    }
    stream.refresh();
  };
  const gone = stream.error && stream.error.status === 404;
  return html`<section data-page="stream">
    <p><a href="#/">← Dashboard</a></p>
    <h1 class="wrap">${path}</h1>
    ${gone ? html`<p class="muted">No such stream right now: it appears when someone publishes or plays it.</p>`
      : html`<${Problem} error=${stream.error} />`}
    ${action && action.ok ? html`<p class="ok" role="status">${action.ok}</p>` : null}
    <${Problem} error=${action && action.error} />
    ${s ? html`<div class="cards">
      <div class="card"><span class="card-label">State</span><b><span class=${`badge ${s.state}`}>${s.state.replace(/_/g, ' ')}</span></b></div>
      <div class="card"><span class="card-label">Publisher</span>
        <b>${s.publisher ? s.publisher.protocol : '–'}</b>
        <small class="wrap">${s.publisher ? `${s.publisher.remote}, ${fmtSince(s.publisher.since)}` : ''}</small>
        ${admin && s.publisher ? html`<button type="button" class="small danger" data-kick-publisher onClick=${kickPublisher}>Kick publisher</button>` : null}</div>
      <div class="card"><span class="card-label">Bitrate in</span><b>${fmtBits(s.bitrate_bps)}</b><small>${fmtBytes(s.bytes_in)} in total</small></div>
      <div class="card"><span class="card-label">Players</span><b>${s.subscribers}</b></div>
    </div>` : null}
    <div class="two">
      <div>
        <h2>Preview</h2>
        ${s && s.publisher ? html`<${Preview} path=${path} protocols=${previewProtocols(plugins)} />`
          : html`<p class="muted">The preview starts when the stream is published.</p>`}
      </div>
      <div>
        <h2>Tracks</h2>
        <${Tracks} tracks=${s && s.tracks} />
      </div>
    </div>
    <h2>Players</h2>
    <${Problem} error=${subs.error && !gone ? subs.error : null} />
    <${Players} subs=${(subs.data && subs.data.subscribers) || []} admin=${admin} onKick=${kick} />
    <h2>URLs</h2>
    ${urls.length ? html`<div class="urls">
      <div><h3>Publish</h3>${urls.filter((u) => u.kind === 'publish').map((u) => html`<${Copy} label=${u.protocol} text=${u.url} />`)}</div>
      <div><h3>Play</h3>${urls.filter((u) => u.kind === 'play').map((u) => html`<${Copy} label=${u.protocol} text=${u.url} />`)}</div>
    </div>` : html`<p class="muted">No protocol plugin is loaded.</p>`}
  </section>`;
}
