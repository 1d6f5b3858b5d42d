// Recordings, shown only when the server has GET /api/v1/recordings (the
// record plugin's API). The list is drawn from whatever fields the entries
// carry; links to play or download are the entries' URL fields.
import { html, api, usePoll, Problem, fmtBytes } from '../lib.js';

const isUrl = (k, v) => typeof v === 'string' && /url$|^href$|^download$|^play$/i.test(k);

function cell(k, v) {
  if (v == null) return '–';
  if (isUrl(k, v)) return html`<a href=${v} download=${/download/i.test(k) ? '' : null}>${k.replace(/_?url$/i, '') || 'open'}</a>`;
  if (/bytes|size/i.test(k) && typeof v === 'number') return fmtBytes(v);
  if (/(^|_)(start|end|started|ended|created)(_at)?$/i.test(k) && typeof v === 'number') return new Date(v * 1000).toLocaleString();
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

export function Recordings() {
  const r = usePoll(() => api('GET', 'recordings'), 5000);
  const data = r.data || {};
  const list = Array.isArray(data) ? data : (data.recordings || []);
  const keys = [...new Set(list.flatMap((x) => Object.keys(x)))];
  return html`<section data-page="recordings">
    <h1>Recordings</h1>
    <${Problem} error=${r.error} />
    ${r.data && !list.length ? html`<p class="muted">No recordings.</p>` : null}
    ${list.length ? html`<table class="list">
      <thead><tr>${keys.map((k) => html`<th>${k}</th>`)}</tr></thead>
      <tbody>${list.map((x, i) => html`<tr key=${i}>${keys.map((k) => html`<td data-label=${k} class="wrap">${cell(k, x[k])}</td>`)}</tr>`)}</tbody>
    </table>` : null}
  </section>`;
}
