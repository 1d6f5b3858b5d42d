// What every page shares: the API client, polling, the server history the
// dashboard draws, number formats and small components.
import { html, useState, useEffect, useRef } from './vendor/htm-preact-standalone.module.js';

export { html, useState, useEffect, useRef };

/** A problem+json answer (RFC 7807) from the API. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && (problem.detail || problem.title) ? (problem.detail || problem.title) : `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

// Called when the API answers 401 after the console had got in (the
// session ended): the app shows the login again.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

/**
 * One API call, relative to the page (so a console behind a proxy's
 * sub-path still finds its API). Bodies are JSON, as the API asks; the
 * session cookie goes along by itself.
 */
export async function api(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (!['GET', 'HEAD', 'DELETE'].includes(method)) {
    init.headers['content-type'] = 'application/json';
    init.body = body === undefined ? '' : (typeof body === 'string' ? body : JSON.stringify(body));
  }
  const r = await fetch(`api/v1/${path}`, init);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!r.ok) {
    const e = new ApiError(r.status, data);
    if (r.status === 401 && path !== 'session') onUnauthorized(e);
    throw e;
  }
  return data;
}

/** Calls `f` now and every `ms` while mounted; {data, error, refresh}. */
export function usePoll(f, ms, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const tick = useRef(null);
  useEffect(() => {
    let alive = true;
    let timer = null;
    const run = async () => {
      clearTimeout(timer);
      try {
        const data = await f();
        if (alive) setState({ data, error: null });
      } catch (error) {
        if (alive) setState((s) => ({ data: s.data, error }));
      }
      if (alive) timer = setTimeout(run, ms);
    };
    tick.current = run;
    run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, deps);
  return { ...state, refresh: () => tick.current && tick.current() };
}

// ---- the server's history (dashboard charts) ----------------------------

const HISTORY_SECS = 300;
const SAMPLE_MS = 2000;
const history = [];
const listeners = new Set();
let sampler = null;
let latest = null;

/** Starts sampling GET /api/v1/server every 2 s (idempotent). */
export function startHistory() {
  if (sampler) return;
  const sample = async () => {
    try {
      const s = await api('GET', 'server');
      const t = performance.now() / 1000;
      const prev = latest;
      latest = { t, s };
      if (prev) {
        const dt = t - prev.t;
        const rate = (a, b) => (a == null || b == null ? null : Math.max(0, (a - b) / dt));
        const cpu = rate(s.cpu_seconds, prev.s.cpu_seconds);
        history.push({
          t: Date.now(),
          cpu: cpu == null ? null : cpu * 100,
          mem: s.memory_bytes,
          in: (rate(s.bytes_in, prev.s.bytes_in) ?? 0) * 8,
          out: (rate(s.bytes_out, prev.s.bytes_out) ?? 0) * 8,
          players: s.subscribers,
          streams: s.streams,
        });
        while (history.length && history[0].t < Date.now() - HISTORY_SECS * 1000) history.shift();
      }
      listeners.forEach((l) => l());
    } catch {
      // Shown by the pages' own calls.
    }
  };
  sample();
  sampler = setInterval(sample, SAMPLE_MS);
}

export function stopHistory() {
  clearInterval(sampler);
  sampler = null;
  latest = null;
  history.length = 0;
}

/** The history and the latest server summary, re-rendered on each sample. */
export function useHistory() {
  const [, setN] = useState(0);
  useEffect(() => {
    const l = () => setN((n) => n + 1);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return { history, server: latest && latest.s };
}

// ---- formats ------------------------------------------------------------

export function fmtBits(bps) {
  if (bps == null) return '–';
  const u = ['b/s', 'kb/s', 'Mb/s', 'Gb/s'];
  let i = 0;
  while (bps >= 1000 && i < u.length - 1) {
    bps /= 1000;
    i += 1;
  }
  return `${bps.toFixed(bps < 10 && i ? 1 : 0)} ${u[i]}`;
}

export function fmtBytes(n) {
  if (n == null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${u[i]}`;
}

export function fmtDuration(secs) {
  if (secs == null) return '–';
  secs = Math.max(0, Math.floor(secs));
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** How long ago a Unix time (seconds) was. */
export function fmtSince(unix) {
  return unix ? fmtDuration(Date.now() / 1000 - unix) : '–';
}

const CODECS = {
  avc1: 'H.264', hvc1: 'H.265', hev1: 'H.265', av01: 'AV1', vp08: 'VP8', vp09: 'VP9',
  mp4a: 'AAC', Opus: 'Opus', opus: 'Opus', '.mp3': 'MP3', mp3: 'MP3', alaw: 'G.711 A-law', ulaw: 'G.711 µ-law',
};

export function codecName(fourcc) {
  return CODECS[fourcc] || CODECS[String(fourcc).trim()] || fourcc;
}

/** "H.264 320×240, AAC 48 kHz 2 ch". */
export function trackSummary(t) {
  const parts = [codecName(t.codec)];
  if (t.width && t.height) parts.push(`${t.width}×${t.height}`);
  if (t.sample_rate) parts.push(`${t.sample_rate / 1000} kHz`);
  if (t.channels) parts.push(`${t.channels} ch`);
  return parts.join(' ');
}

// ---- components -----------------------------------------------------------

/** A value with a button that copies it. */
export function Copy({ text, label }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Not a secure context: select the text for Ctrl-C instead.
      const r = document.createRange();
      const el = document.getElementById(`copy-${text}`);
      if (el) {
        r.selectNodeContents(el);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
      }
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return html`<div class="copy">
    ${label ? html`<span class="copy-label">${label}</span>` : null}
    <code id=${`copy-${text}`}>${text}</code>
    <button type="button" class="small" onClick=${copy} aria-label=${`copy ${text}`}>${done ? 'Copied' : 'Copy'}</button>
  </div>`;
}

/**
 * A line chart of `series` ([{values: [[t, v]], cls, label}]) over the
 * last minutes, in an SVG that takes its box's width.
 */
export function Chart({ title, series, fmt, max: fixedMax }) {
  const W = 300;
  const H = 80;
  // From the first sample (the page keeps what it saw since it opened),
  // one minute at least, five at most.
  const now = Date.now();
  const first = Math.min(...series.flatMap((s) => s.values.map((p) => p[0])), now);
  const span = Math.min(HISTORY_SECS * 1000, Math.max(60_000, now - first));
  const from = now - span;
  const all = series.flatMap((s) => s.values.map((p) => p[1])).filter((v) => v != null);
  const max = Math.max(fixedMax || 0, ...all, 1e-9);
  const x = (t) => ((t - from) / (now - from)) * W;
  const y = (v) => H - 2 - (v / max) * (H - 4);
  const last = (s) => {
    const v = s.values.filter((p) => p[1] != null);
    return v.length ? v[v.length - 1][1] : null;
  };
  return html`<figure class="chart">
    <figcaption>
      <span>${title}</span>
      ${series.map((s) => html`<span class=${`legend ${s.cls}`}>${s.label ? `${s.label} ` : ''}${fmt(last(s))}</span>`)}
    </figcaption>
    <svg viewBox=${`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label=${title}>
      <line x1="0" x2=${W} y1=${H - 1} y2=${H - 1} class="axis" />
      ${series.map((s) => html`<polyline class=${s.cls} vector-effect="non-scaling-stroke"
        points=${s.values.filter((p) => p[1] != null).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')} />`)}
    </svg>
    <div class="chart-scale"><span>${span >= 120_000 ? `${Math.round(span / 60_000)} min` : `${Math.round(span / 1000)} s`} ago</span><span>max ${fmt(max)}</span></div>
  </figure>`;
}

/** An error box for a failed call, or nothing. */
export function Problem({ error }) {
  if (!error) return null;
  return html`<p class="problem" role="alert">${error.message || String(error)}</p>`;
}
