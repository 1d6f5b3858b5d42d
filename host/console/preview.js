// A live preview of a stream in the best protocol the server offers: WHEP
// (WebRTC), else LL-HLS through hls.js, else HTTP-FLV through mpegts.js
// (both vendored, loaded only when used). The viewer may pick another.
import { html, useState, useEffect, useRef } from './lib.js';

const NAMES = { whep: 'WebRTC (WHEP)', hls: 'LL-HLS (hls.js)', flv: 'HTTP-FLV (mpegts.js)' };

/** WHEP: a recvonly peer connection; its offer POSTed, the answer applied. */
async function playWhep(video, path, signal) {
  const pc = new RTCPeerConnection();
  let location = null;
  const stop = async () => {
    pc.close();
    if (location) await fetch(location, { method: 'DELETE' }).catch(() => {});
  };
  try {
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      if (video.srcObject !== stream) video.srcObject = stream;
    };
    await pc.setLocalDescription(await pc.createOffer());
    // Non-trickle: wait for the candidates, at most a second.
    await new Promise((ok) => {
      if (pc.iceGatheringState === 'complete') ok();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && ok());
      setTimeout(ok, 1000);
    });
    const url = `${path}/whep`;
    const r = await fetch(url, {
      method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp, signal,
    });
    if (r.status !== 201) throw new Error(`WHEP: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
    const loc = r.headers.get('location');
    if (loc) location = new URL(loc, new URL(url, document.baseURI)).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
    return stop;
  } catch (e) {
    await stop();
    throw e;
  }
}

async function playHls(video, path) {
  const url = new URL(`${path}.m3u8`, document.baseURI).href;
  const { default: Hls } = await import('./vendor/hls.min.mjs');
  if (!Hls.isSupported()) {
    if (!video.canPlayType('application/vnd.apple.mpegurl')) throw new Error('this browser plays no HLS');
    video.src = url;
    return () => {
      video.removeAttribute('src');
      video.load();
    };
  }
  const hls = new Hls({ lowLatencyMode: true, enableWorker: false, backBufferLength: 30 });
  let failed = null;
  hls.on(Hls.Events.ERROR, (_, d) => {
    if (d.fatal) failed = `${d.type}: ${d.details}`;
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  return Object.assign(() => hls.destroy(), { failed: () => failed });
}

let mpegtsLoaded = null;
function loadMpegts() {
  mpegtsLoaded ??= new Promise((ok, fail) => {
    const s = document.createElement('script');
    s.src = new URL('./vendor/mpegts.js', import.meta.url).href;
    s.onload = () => ok(window.mpegts);
    s.onerror = () => fail(new Error('cannot load mpegts.js'));
    document.head.append(s);
  });
  return mpegtsLoaded;
}

async function playFlv(video, path) {
  const mpegts = await loadMpegts();
  if (!mpegts.isSupported()) throw new Error('this browser has no MSE');
  mpegts.LoggingControl.enableAll = false;
  const p = mpegts.createPlayer(
    { type: 'flv', isLive: true, url: new URL(`${path}.flv`, document.baseURI).href },
    { enableWorker: false, liveBufferLatencyChasing: true, lazyLoad: false },
  );
  let failed = null;
  p.on(mpegts.Events.ERROR, (type, detail) => {
    failed = `${type}: ${detail}`;
  });
  p.attachMediaElement(video);
  p.load();
  return Object.assign(() => {
    p.pause();
    p.unload();
    p.detachMediaElement();
    p.destroy();
  }, { failed: () => failed });
}

const PLAY = { whep: playWhep, hls: playHls, flv: playFlv };

export function Preview({ path, protocols }) {
  const video = useRef(null);
  const [chosen, setChosen] = useState(null);
  const [status, setStatus] = useState('');
  const [error, setError] = useState(null);
  const protocol = chosen && protocols.includes(chosen) ? chosen : protocols[0];

  useEffect(() => {
    if (!protocol) return undefined;
    const v = video.current;
    const abort = new AbortController();
    let stop = null;
    let alive = true;
    setError(null);
    setStatus('connecting…');
    PLAY[protocol](v, path, abort.signal).then((s) => {
      stop = s;
      if (!alive) {
        s();
        return;
      }
      v.play().catch(() => {});
    }).catch((e) => {
      if (alive) setError(`${NAMES[protocol]}: ${e.message || e}`);
    });
    const timer = setInterval(() => {
      const failed = stop && stop.failed && stop.failed();
      if (failed) setError(`${NAMES[protocol]}: ${failed}`);
      setStatus(v.currentTime > 0 ? `playing, ${v.currentTime.toFixed(1)} s` : 'connecting…');
    }, 500);
    return () => {
      alive = false;
      clearInterval(timer);
      abort.abort();
      if (stop) stop();
      v.pause();
      v.srcObject = null;
    };
  }, [path, protocol]);

  if (!protocols.length) {
    return html`<p class="muted">No preview: load the webrtc, hls or flv plugin to watch streams here.</p>`;
  }
  return html`<div class="preview">
    <video ref=${video} muted autoplay playsinline controls data-protocol=${protocol}></video>
    <div class="preview-bar">
      <label>Preview over
        <select value=${protocol} onChange=${(e) => setChosen(e.target.value)}>
          ${protocols.map((p) => html`<option value=${p}>${NAMES[p]}</option>`)}
        </select>
      </label>
      <span class="muted preview-status">${status}</span>
    </div>
    ${error ? html`<p class="problem" role="alert">${error}</p>` : null}
  </div>`;
}
