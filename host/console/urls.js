// Publish and play URLs of a stream for every protocol whose plugin is
// loaded, as the README lists them. Addresses come from the plugins'
// config sections (their defaults when a section leaves them out); the host
// name is the one this page was opened with.

/** The port of a listen address ("0.0.0.0:1935", "[::]:8554"), or null. */
function port(listen) {
  const m = /:(\d+)$/.exec(String(listen || ''));
  return m ? m[1] : null;
}

/** The host name as the browser reached this server (IPv6 in brackets). */
function hostName() {
  return location.hostname.includes(':') && !location.hostname.startsWith('[')
    ? `[${location.hostname}]` : location.hostname;
}

/**
 * [{protocol, kind: 'publish'|'play', url}] for `path` ("live/x"), given
 * the running plugins (GET /api/v1/plugins) and config (GET /api/v1/config).
 */
export function streamUrls(path, plugins, config) {
  const loaded = new Set((plugins || []).filter((p) => p.state === 'running').map((p) => p.name));
  const section = (name) => (config && config.plugins && config.plugins[name]) || {};
  const host = hostName();
  const http = `${location.protocol}//${location.host}`;
  const ws = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  const out = [];
  const add = (protocol, kind, url) => out.push({ protocol, kind, url });
  if (loaded.has('rtmp')) {
    const p = port(section('rtmp').listen) || '1935';
    const url = `rtmp://${host}${p === '1935' ? '' : `:${p}`}/${path}`;
    add('RTMP', 'publish', url);
    add('RTMP', 'play', url);
    const tls = port(section('rtmp').tls_listen);
    if (tls) {
      const s = `rtmps://${host}${tls === '443' ? '' : `:${tls}`}/${path}`;
      add('RTMPS', 'publish', s);
      add('RTMPS', 'play', s);
    }
  }
  if (loaded.has('srt')) {
    const p = port(section('srt').listen) || '8890';
    add('SRT', 'publish', `srt://${host}:${p}?streamid=publish:${path}`);
    add('SRT', 'play', `srt://${host}:${p}?streamid=read:${path}`);
  }
  if (loaded.has('rtsp')) {
    const p = port(section('rtsp').listen) || '8554';
    const url = `rtsp://${host}${p === '554' ? '' : `:${p}`}/${path}`;
    add('RTSP', 'publish', url);
    add('RTSP', 'play', url);
  }
  if (loaded.has('webrtc')) {
    add('WHIP', 'publish', `${http}/${path}/whip`);
    add('WHEP', 'play', `${http}/${path}/whep`);
  }
  if (loaded.has('flv')) {
    add('HTTP-FLV', 'play', `${http}/${path}.flv`);
    add('WS-FLV', 'play', `${ws}/${path}.flv`);
  }
  if (loaded.has('hls')) {
    add('LL-HLS', 'play', `${http}/${path}.m3u8`);
    add('HLS (TS)', 'play', `${http}/${path}.m3u8?format=ts`);
    add('fMP4', 'play', `${http}/${path}.mp4`);
    add('WS-fMP4', 'play', `${ws}/${path}.mp4`);
  }
  return out;
}

/**
 * The preview protocols this server offers, best first: WHEP (sub-second),
 * LL-HLS (hls.js), HTTP-FLV (mpegts.js).
 */
export function previewProtocols(plugins) {
  const loaded = new Set((plugins || []).filter((p) => p.state === 'running').map((p) => p.name));
  return [
    loaded.has('webrtc') && 'whep',
    loaded.has('hls') && 'hls',
    loaded.has('flv') && 'flv',
  ].filter(Boolean);
}
