// The running config: shown with secrets redacted (the API redacts them),
// edited as a form (or as JSON), validated and applied through the API,
// whose errors appear beside the key they are about. A secret left alone
// goes back as the API's "<redacted>" placeholder, which the server
// answers by keeping the running value: saving never overwrites a secret
// with the placeholder.
import { html, api, useState, useEffect, useRef } from '../lib.js';

const REDACTED = '<redacted>';

const clone = (v) => JSON.parse(JSON.stringify(v));
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isScalar = (v) => v === null || typeof v !== 'object';

/** Text typed for a number or unset key: a number, a boolean, or text. */
function parseLoose(text) {
  const t = text.trim();
  if (t === '') return null;
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  return text;
}

function setIn(root, path, value) {
  const keys = path.split('.');
  let o = root;
  for (const k of keys.slice(0, -1)) o = o[Array.isArray(o) ? Number(k) : k];
  const last = keys[keys.length - 1];
  o[Array.isArray(o) ? Number(last) : last] = value;
}

/** One key's input, its hint and the API's error for it. */
function Leaf({ path, name, value, original, errors, readOnly, onChange }) {
  const error = errors[path];
  let input;
  if (typeof original === 'boolean') {
    input = html`<input type="checkbox" id=${path} checked=${value === true} disabled=${readOnly}
      onChange=${(e) => onChange(path, e.target.checked)} />`;
  } else if (original === REDACTED) {
    input = html`<input type="password" id=${path} autocomplete="off" disabled=${readOnly}
      defaultValue=${value === REDACTED ? '' : value} placeholder="secret kept (type to replace)"
      onInput=${(e) => onChange(path, e.target.value === '' ? REDACTED : e.target.value)} />`;
  } else if (Array.isArray(original)) {
    // Lists of plain values as "a, b"; lists of objects as JSON.
    const plain = original.every(isScalar) && Array.isArray(value) && value.every(isScalar);
    if (plain) {
      input = html`<input type="text" id=${path} disabled=${readOnly} defaultValue=${value.join(', ')}
        placeholder="none (comma-separated)"
        onChange=${(e) => onChange(path, e.target.value.split(',').map((x) => x.trim()).filter(Boolean))} />`;
    } else {
      input = html`<textarea id=${path} rows="3" disabled=${readOnly} spellcheck="false"
        onChange=${(e) => {
          try {
            onChange(path, JSON.parse(e.target.value), null);
          } catch {
            onChange(path, value, 'not valid JSON');
          }
        }} defaultValue=${JSON.stringify(value)}></textarea>`;
    }
  } else {
    const loose = typeof original === 'number' || original === null;
    input = html`<input type="text" id=${path} disabled=${readOnly} spellcheck="false"
      inputmode=${typeof original === 'number' ? 'decimal' : null}
      defaultValue=${value === null || value === undefined ? '' : String(value)} placeholder=${original === null ? 'not set' : ''}
      onInput=${(e) => onChange(path, loose ? parseLoose(e.target.value) : e.target.value)} />`;
  }
  return html`<div class=${`field${error ? ' has-error' : ''}`} data-key=${path}>
    <label for=${path}>${name}</label>
    ${input}
    ${error ? html`<p class="field-error" role="alert">${error}</p>` : null}
  </div>`;
}

function Node({ path, name, value, original, errors, readOnly, onChange, depth }) {
  if (!isObject(original) || !isObject(value)) {
    return html`<${Leaf} path=${path} name=${name} value=${value} original=${original}
      errors=${errors} readOnly=${readOnly} onChange=${onChange} />`;
  }
  const keys = Object.keys(value);
  const inside = Object.keys(errors).some((e) => e === path || e.startsWith(`${path}.`));
  const own = errors[path];
  return html`<details class="section" open=${depth < 1 || inside} data-key=${path}>
    <summary>${name}</summary>
    ${own ? html`<p class="field-error" role="alert">${own}</p>` : null}
    ${keys.length === 0 ? html`<p class="muted">empty</p>` : null}
    ${keys.map((k) => html`<${Node} key=${k} path=${`${path}.${k}`} name=${k} value=${value[k]}
      original=${original[k] === undefined ? value[k] : original[k]}
      errors=${errors} readOnly=${readOnly} onChange=${onChange} depth=${depth + 1} />`)}
  </details>`;
}

export function Config({ admin, onApplied }) {
  const [original, setOriginal] = useState(null);
  const [draft, setDraft] = useState(null);
  const [json, setJson] = useState(null);
  const [errors, setErrors] = useState({});
  const [local, setLocal] = useState({});
  const [msg, setMsg] = useState(null);
  const [busy, setBusy] = useState(false);
  // Inputs keep what was typed (uncontrolled); a reload remounts them.
  const [generation, setGeneration] = useState(0);
  // The draft as of the last edit, even before the next render: a change
  // event (on blur) and the click that caused it come in one go.
  const latest = useRef(null);
  const local_ = useRef({});
  const load = async () => {
    try {
      const c = await api('GET', 'config');
      setOriginal(c);
      latest.current = clone(c);
      local_.current = {};
      setDraft(latest.current);
      setGeneration((g) => g + 1);
      setJson(null);
      setErrors({});
      setLocal({});
    } catch (e) {
      setMsg({ error: e.message });
    }
  };
  useEffect(() => {
    load();
  }, []);
  if (!draft) return html`<section data-page="config"><h1>Config</h1>${msg ? html`<p class="problem">${msg.error}</p>` : html`<p class="muted">Loading…</p>`}</section>`;

  const onChange = (path, value, localError) => {
    const d = clone(latest.current);
    setIn(d, path, value);
    latest.current = d;
    local_.current = { ...local_.current, [path]: localError || undefined };
    setDraft(d);
    setLocal(local_.current);
    setMsg(null);
  };
  const body = () => (json !== null ? json : JSON.stringify(latest.current, null, 2));
  const send = async (what) => {
    const bad = Object.entries(local_.current).filter(([, v]) => v);
    if (bad.length) {
      setMsg({ error: `Fix ${bad.map(([k]) => k).join(', ')} first.` });
      return;
    }
    setBusy(true);
    setMsg(null);
    setErrors({});
    try {
      if (what === 'validate') {
        await api('POST', 'config/validate', body());
        setMsg({ ok: 'Valid.' });
      } else {
        const r = await api('PUT', 'config', body());
        const notes = [];
        if (r.plugins_reloaded && r.plugins_reloaded.length) notes.push(`plugins reloaded: ${r.plugins_reloaded.join(', ')}`);
        if (r.restart_required && r.restart_required.length) notes.push(`needs a restart to take effect: ${r.restart_required.join(', ')}`);
        await load();
        setMsg({ ok: `Applied.${notes.length ? ` ${notes.join('; ')}.` : ''}` });
        onApplied();
      }
    } catch (e) {
      const list = (e.problem && e.problem.errors) || [];
      const byKey = {};
      for (const x of list) byKey[x.path || ''] = byKey[x.path || ''] ? `${byKey[x.path || '']}; ${x.message}` : x.message;
      setErrors(byKey);
      setMsg({ error: list.length ? `The server refused this config (${list.length} error${list.length > 1 ? 's' : ''}, shown at the keys below).` : e.message, list });
    }
    setBusy(false);
  };
  const shown = { ...errors, ...Object.fromEntries(Object.entries(local).filter(([, v]) => v)) };
  const top = Object.keys(draft);
  const general = top.filter((k) => !isObject(draft[k]));
  const sections = top.filter((k) => isObject(draft[k]));
  const readOnly = !admin;
  return html`<section data-page="config">
    <h1>Config</h1>
    <p class="muted">The running configuration, secrets redacted. ${admin
      ? 'Edit, validate, apply: what can change live changes at once; the answer says what needs a restart. Secrets left blank keep their value.'
      : 'Read-only: your token may only read.'}</p>
    ${msg && msg.ok ? html`<p class="ok" role="status">${msg.ok}</p>` : null}
    ${msg && msg.error ? html`<div class="problem" role="alert" data-config-problem>${msg.error}
      ${msg.list && msg.list.length ? html`<ul>${msg.list.map((x) => html`<li><a href=${`#/config`} onClick=${(ev) => {
        ev.preventDefault();
        const el = document.getElementById(x.path);
        if (el) el.focus();
      }}><code>${x.path || '(document)'}</code></a>: ${x.message}${json !== null && x.line ? ` (line ${x.line})` : ''}</li>`)}</ul>` : null}
    </div>` : null}
    ${admin ? html`<div class="actions sticky">
      <button type="button" data-validate disabled=${busy} onClick=${() => send('validate')}>Validate</button>
      <button type="button" class="primary" data-apply disabled=${busy} onClick=${() => send('apply')}>Apply</button>
      <button type="button" disabled=${busy} onClick=${load}>Discard changes</button>
      <button type="button" class="link" onClick=${() => setJson(json === null ? JSON.stringify(draft, null, 2) : null)}>
        ${json === null ? 'Edit as JSON' : 'Edit as a form'}</button>
    </div>` : null}
    ${json !== null ? html`<div class="field" data-key="(json)">
      <label for="config-json">The whole config (JSON)</label>
      <textarea id="config-json" rows="30" spellcheck="false" value=${json} onInput=${(e) => setJson(e.target.value)}></textarea>
    </div>` : html`<form class="config" key=${generation} onSubmit=${(e) => e.preventDefault()}>
      <details class="section" open data-key="">
        <summary>general</summary>
        ${shown[''] ? html`<p class="field-error" role="alert">${shown['']}</p>` : null}
        ${general.map((k) => html`<${Leaf} key=${k} path=${k} name=${k} value=${draft[k]} original=${original[k]}
          errors=${shown} readOnly=${readOnly} onChange=${onChange} />`)}
      </details>
      ${sections.map((k) => html`<${Node} key=${k} path=${k} name=${k} value=${draft[k]} original=${original[k]}
        errors=${shown} readOnly=${readOnly} onChange=${onChange} depth=${0} />`)}
    </form>`}
  </section>`;
}
