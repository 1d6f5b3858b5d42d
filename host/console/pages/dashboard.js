// The dashboard: what is live, who watches over which protocol, traffic,
// and the server's CPU and memory over the last five minutes.
import {
  html, api, usePoll, useHistory, Chart, Problem, fmtBits, fmtBytes, fmtDuration, trackSummary,
} from '../lib.js';

function count(map) {
  const e = Object.entries(map || {}).filter(([, n]) => n > 0);
  return e.length ? e.map(([k, n]) => `${k} ${n}`).join(' · ') : 'none';
}

export function Dashboard() {
  const streams = usePoll(() => api('GET', 'streams'), 1000);
  const { history, server } = useHistory();
  const list = (streams.data && streams.data.streams) || [];
  const publishers = {};
  for (const s of list) {
    if (s.publisher) publishers[s.publisher.protocol] = (publishers[s.publisher.protocol] || 0) + 1;
  }
  const last = history[history.length - 1] || {};
  const pts = (k) => history.map((h) => [h.t, h[k]]);
  return html`<section data-page="dashboard">
    <h1>Dashboard</h1>
    <${Problem} error=${streams.error} />
    <div class="cards">
      <div class="card"><span class="card-label">Streams</span><b data-stat="streams">${list.length}</b></div>
      <div class="card"><span class="card-label">Publishers</span><b data-stat="publishers">${Object.values(publishers).reduce((a, b) => a + b, 0)}</b>
        <small>${count(publishers)}</small></div>
      <div class="card"><span class="card-label">Players</span><b data-stat="players">${server ? server.subscribers : '–'}</b>
        <small>${count(server && server.subscribers_by_protocol)}</small></div>
      <div class="card"><span class="card-label">In / out</span><b>${fmtBits(last.in)}</b><small>out ${fmtBits(last.out)}</small></div>
      <div class="card"><span class="card-label">CPU</span><b>${last.cpu == null ? '–' : `${last.cpu.toFixed(0)} %`}</b>
        <small>${server ? `${server.cpus} CPUs` : ''}</small></div>
      <div class="card"><span class="card-label">Memory</span><b>${fmtBytes(server && server.memory_bytes)}</b>
        <small>${server ? `up ${fmtDuration(server.uptime_secs)} · v${server.version}` : ''}</small></div>
    </div>
    <div class="charts">
      <${Chart} title="Bitrate" fmt=${fmtBits}
        series=${[{ values: pts('in'), cls: 's1', label: 'in' }, { values: pts('out'), cls: 's2', label: 'out' }]} />
      <${Chart} title="Players" fmt=${(v) => (v == null ? '–' : String(Math.round(v)))} max=${1}
        series=${[{ values: pts('players'), cls: 's1' }]} />
      <${Chart} title="CPU (100 % = one core)" fmt=${(v) => (v == null ? '–' : `${v.toFixed(0)} %`)}
        series=${[{ values: pts('cpu'), cls: 's3' }]} />
      <${Chart} title="Memory" fmt=${fmtBytes} series=${[{ values: pts('mem'), cls: 's2' }]} />
    </div>
    <h2>Streams</h2>
    ${list.length === 0 && streams.data ? html`<p class="muted">No streams. Publish one: the URLs are on a stream's page, e.g. <code>rtmp://${location.hostname}/live/test</code>.</p>` : null}
    ${list.length ? html`<table class="list">
      <thead><tr><th>Stream</th><th>State</th><th>Source</th><th>Tracks</th><th>Players</th><th>Bitrate</th></tr></thead>
      <tbody>
        ${list.map((s) => html`<tr key=${s.path} data-stream=${s.path}>
          <td data-label="Stream"><a href=${`#/streams/${s.path}`}>${s.path}</a></td>
          <td data-label="State"><span class=${`badge ${s.state}`}>${s.state.replace(/_/g, ' ')}</span></td>
          <td data-label="Source">${s.publisher ? `${s.publisher.protocol} ${s.publisher.remote}` : '–'}</td>
          <td data-label="Tracks">${(s.tracks || []).filter((t) => t.kind !== 'data').map(trackSummary).join(', ') || '–'}</td>
          <td data-label="Players">${s.subscribers}</td>
          <td data-label="Bitrate">${fmtBits(s.bitrate_bps)}</td>
        </tr>`)}
      </tbody>
    </table>` : null}
  </section>`;
}
