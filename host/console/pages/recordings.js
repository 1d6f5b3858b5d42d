// Recordings (shown when the server has GET /api/v1/recordings): the index
// by stream and time, each file to play (MP4 and fMP4, in the page) or
// download, and, for admins, delete.
import { html, api, usePoll, useState, Problem, fmtBytes, fmtDuration } from '../lib.js';

/** A datetime-local input's value (local time) as RFC 3339 UTC, or null. */
const utc = (local) => (local ? new Date(local).toISOString() : null);

export function Recordings({ admin }) {
  const [filter, setFilter] = useState({ stream: '', from: '', to: '' });
  const [playing, setPlaying] = useState(null);
  const [msg, setMsg] = useState(null);
  const query = () => {
    const q = new URLSearchParams({ limit: '500' });
    if (filter.stream.trim()) q.set('stream', filter.stream.trim());
    if (filter.from) q.set('from', utc(filter.from));
    if (filter.to) q.set('to', utc(filter.to));
    return `recordings?${q}`;
  };
  const r = usePoll(() => api('GET', query()), 5000, [filter.stream, filter.from, filter.to]);
  const list = (r.data && r.data.recordings) || [];
  const set = (k) => (e) => setFilter({ ...filter, [k]: e.target.value });
  const remove = async (rec) => {
    setMsg(null);
    try {
      await api('DELETE', `recordings/${encodeURIComponent(rec.id)}`);
      if (playing === rec.id) setPlaying(null);
      setMsg({ ok: `Deleted ${rec.stream} ${rec.start}.` });
    } catch (e) {
      setMsg({ error: e });
    }
    r.refresh();
  };
  const current = list.find((x) => x.id === playing);
  return html`<section data-page="recordings">
    <h1>Recordings</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <label>Stream <input type="text" placeholder="app/stream" value=${filter.stream} onChange=${set('stream')} /></label>
      <label>From <input type="datetime-local" value=${filter.from} onChange=${set('from')} /></label>
      <label>To <input type="datetime-local" value=${filter.to} onChange=${set('to')} /></label>
    </form>
    <${Problem} error=${r.error} />
    ${msg && msg.ok ? html`<p class="ok" role="status">${msg.ok}</p>` : null}
    <${Problem} error=${msg && msg.error} />
    ${current ? html`<div class="preview">
      <video src=${current.url} controls autoplay muted playsinline data-recording=${current.id}></video>
    </div>` : null}
    ${r.data && !list.length ? html`<p class="muted">No recordings${filter.stream || filter.from || filter.to ? ' match' : ''}.</p>` : null}
    ${list.length ? html`<table class="list">
      <thead><tr><th>Stream</th><th>Start</th><th>Length</th><th>Format</th><th>Size</th><th></th></tr></thead>
      <tbody>${list.map((x) => html`<tr key=${x.id} data-rec=${x.id}>
        <td data-label="Stream" class="wrap">${x.stream}</td>
        <td data-label="Start">${new Date(x.start).toLocaleString()}</td>
        <td data-label="Length">${fmtDuration(x.duration_s)}${x.complete ? '' : ' (recording)'}</td>
        <td data-label="Format"><span>${x.format} <span class="muted">${x.codecs}</span></span></td>
        <td data-label="Size">${fmtBytes(x.bytes)}</td>
        <td><span class="row-actions">
          ${['mp4', 'fmp4'].includes(x.format) ? html`<button type="button" class="small" data-play=${x.id} onClick=${() => setPlaying(x.id)}>Play</button>` : null}
          <a href=${x.url} download="" class="small">Download</a>
          ${admin ? html`<button type="button" class="small danger" disabled=${!x.complete} onClick=${() => remove(x)}>Delete</button>` : null}
        </span></td>
      </tr>`)}</tbody>
    </table>` : null}
  </section>`;
}
