// Plays a WHEP URL or publishes to a WHIP URL from headless Chromium and
// prints one JSON line (two with --hold), for Rill's WebRTC tests.
//
//   node webrtc.mjs whep <url> [--seconds N] [--count K] [--min-fps F] [--token T] [--timeout S] [--cors] [--sdp]
//                              [--answer-port P]
//   node webrtc.mjs whip <url> [--seconds N] [--video-codec H264|VP8] [--only-codec] [--hold]
//                              [--token T] [--timeout S] [--cors] [--sdp]
//
// whep: K (default 1) recvonly video+audio peer connections in one page, each
// playing into a muted autoplay <video>. Each offer (non-trickle: gathered
// for at most 1 s) is POSTed to <url> as application/sdp (with
// `Authorization: Bearer T` given --token); the answer must come back 201,
// application/sdp, with a Location. Plays until every viewer has decoded
// frames for N (default 5) seconds since its first, and still is (more frames
// than 2 s before), then DELETEs each Location and closes. Fatal after
// --timeout (default 20) seconds from the POSTs, when a connection fails, or
// (--min-fps F) when a viewer decoded fewer than F frames a second: Chromium
// drops most frames of an H.264 stream with B-frames but still decodes some.
//
// whip: Chromium's fake camera (640x360, 25 fps) and microphone, sendonly,
// the --video-codec (default H264, packetization-mode=1 first) first in the
// offer, or alone with --only-codec. Publishes N seconds after the connection
// is `connected` (fatal if not within --timeout), then DELETEs. With --hold it
// prints {"connected":true,...} once connected and publishes until stdin
// closes (or a `stop` line, SIGTERM, SIGINT), then DELETEs and prints the
// final line; a caller must give it a piped stdin it keeps open.
//
// --answer-port P replaces the port of the answer's UDP candidates with P (a
// test's lossy UDP relay in front of the server's port, or a dead port).
//
// The HTTP is done from node (no CORS needed); --cors does it from the page
// (served from another origin than <url>), which needs the server's CORS
// answers, including Access-Control-Expose-Headers: Location. --sdp adds the
// offer and answer to the JSON.
//
// Final line, whep: {mode, url, status, location, contentType, deleteStatus,
// videoCodec, videoFmtp, audioCodec, framesDecoded, framesReceived,
// framesDropped, width, height, videoPackets, audioPackets, audioBytes,
// audioSamples, packetsLost, jitterBufferMs, freezeCount, nackCount,
// retransmitted (video packets received as retransmissions),
// firstFrameMs (POST → first decoded frame), firstRenderMs, playedSeconds,
// decodedFps (frames decoded a second since the first),
// currentTime, videoFrames, connectionState, iceConnectionState, remote,
// count, viewers [framesDecoded per viewer], viewerFirstFrameMs,
// viewerPlayedSeconds (since each one's first frame), viewerFps, statuses,
// deleteStatuses, samples [{t, fd, fr, w, h, lost, jb, ap, ab, as, ct, vf,
// cs}] (viewer 0 every 500 ms: t s since its POST, frames decoded/received,
// size, packets lost, mean jitter-buffer ms, audio packets/bytes/samples,
// <video> currentTime and totalVideoFrames, connectionState), console,
// browser, elapsed, fatal}; the summary fields are viewer 0's.
// Final line, whip: {mode, url, status, location, contentType, deleteStatus,
// videoCodec, videoFmtp, audioCodec, offered, tracks, framesEncoded,
// keyFramesEncoded, width, height, fps, videoPacketsSent, videoBytesSent,
// audioPacketsSent, audioBytesSent, nackCount, pliCount, firCount, encoder,
// qualityLimitation, connectMs (POST → connected), publishedSeconds,
// connectionState, iceConnectionState, remote, samples [{t, fe, vp, vb, ap,
// w, h, fps, cs}], console, browser, elapsed, fatal}. --hold's first line:
// {connected: true, mode, url, status, location, connectMs, videoCodec,
// audioCodec, offered} (the codecs may still be null then).
//
// `fatal` is null or why the run failed (a non-201 answer: its status and
// body); exits 2 when fatal, else 0 (the caller asserts the rest). Chromium's
// console errors and warnings go to stderr. Chromium is Debian's
// (/usr/bin/chromium, or $CHROMIUM); playwright-core never downloads one.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const valued = ['seconds', 'count', 'token', 'timeout', 'video-codec', 'min-fps', 'answer-port'];
const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && valued.includes(args[i - 1].slice(2))));
const [mode, url] = positional;
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);
const seconds = Number(opt('seconds', 5));
const timeout = Number(opt('timeout', 20));
const count = Math.max(1, Number(opt('count', 1)));
const minFps = Number(opt('min-fps', 0));
const answerPort = opt('answer-port', null);
const token = opt('token', null);
const videoCodec = String(opt('video-codec', 'H264')).toUpperCase();
const hold = flag('hold');
const cors = flag('cors');
const withSdp = flag('sdp');
if (!['whep', 'whip'].includes(mode) || !url || !(seconds >= 0) || !(timeout > 0)) {
  console.error('usage: node webrtc.mjs whep <url> [--seconds N] [--count K] [--min-fps F] [--token T] [--timeout S] [--cors] [--sdp]\n'
    + '       node webrtc.mjs whip <url> [--seconds N] [--video-codec H264|VP8] [--only-codec] [--hold] [--token T] [--timeout S] [--cors] [--sdp]');
  process.exit(2);
}

const result = { mode, url, fatal: null, console: [] };
const started = Date.now();
const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`); // synchronous on a pipe
const sleep = (ms) => new Promise((ok) => setTimeout(ok, Math.max(0, ms)));
// An expected failure: reported as its message alone, without a stack.
const fail = (msg) => Object.assign(new Error(msg), { expected: true });
// Rejects if `p` takes longer than `ms`: page.evaluate() has no timeout.
const within = (p, ms, what) => Promise.race([
  p,
  sleep(ms).then(() => { throw fail(`${what}: no answer in ${ms / 1000} s`); }),
]);

// Whatever hangs, answer within launch + timeout + playing + slack; --hold
// disarms it once connected and rearms it when asked to stop.
let watchdog;
const arm = (s) => {
  clearTimeout(watchdog);
  watchdog = setTimeout(() => {
    emit({ ...result, fatal: 'webrtc.mjs watchdog: no result in time' });
    process.exit(2);
  }, s * 1000);
  watchdog.unref();
};
arm(timeout + seconds + 60);

// --hold: stop when stdin closes or says `stop`, or on SIGTERM/SIGINT.
let stopAsked = false;
if (hold) {
  const stop = () => {
    if (!stopAsked) arm(40);
    stopAsked = true;
  };
  readline.createInterface({ input: process.stdin })
    .on('line', (l) => { if (l.trim() === 'stop') stop(); })
    .on('close', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// The page, from a throwaway HTTP server on a free loopback port
// (http://127.0.0.1 is a secure context: getUserMedia and WebRTC work).
const server = http.createServer((req, res) => {
  if (new URL(req.url, 'http://x').pathname !== '/webrtc.html') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  fs.createReadStream(path.join(here, 'webrtc.html')).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const pageUrl = `http://127.0.0.1:${server.address().port}/webrtc.html`;

let browser;
let page;

// One HTTP exchange with the WHIP/WHEP endpoint, from node or (--cors) the page.
async function request(method, target, body) {
  if (cors) {
    return within(page.evaluate(([m, u, b, t]) => window.rill.http(m, u, b, t), [method, target, body, token]),
      15000, `${method} ${target} (from the page)`);
  }
  const headers = {};
  if (body !== null) headers['content-type'] = 'application/sdp';
  if (token) headers.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(target, { method, headers, body: body ?? undefined, signal: AbortSignal.timeout(15000) });
  } catch (e) {
    throw fail(`${method} ${target}: ${e.message}${e.cause ? `: ${e.cause.message || e.cause}` : ''}`);
  }
  return {
    status: res.status,
    location: res.headers.get('location'),
    contentType: res.headers.get('content-type'),
    url: res.url,
    body: await res.text(),
  };
}

// POSTs an offer; checks for 201 + application/sdp + Location. Fills `s`
// (status, contentType, location, answer) as it learns them, so the caller
// has them even when this throws.
async function post(s, offer, who) {
  s.postAt = Date.now();
  const r = await request('POST', url, offer);
  s.status = r.status;
  s.contentType = r.contentType;
  if (r.location) s.location = new URL(r.location, r.url || url).href;
  if (r.status !== 201) throw fail(`${who}POST ${url}: HTTP ${r.status} (want 201): ${r.body.slice(0, 500)}`);
  if (!s.location) {
    throw fail(`${who}POST ${url}: 201 without a Location header${cors ? ' (with --cors the server must send Access-Control-Expose-Headers: Location)' : ''}`);
  }
  if (!/^application\/sdp\b/i.test(r.contentType || '')) {
    throw fail(`${who}POST ${url}: answer's Content-Type is ${r.contentType}, want application/sdp`);
  }
  if (!/^v=0/.test(r.body)) throw fail(`${who}POST ${url}: the 201's body is no SDP: ${r.body.slice(0, 200)}`);
  s.answer = answerPort === null ? r.body
    : r.body.replace(/^(a=candidate:\S+ \d+ udp \d+ \S+ )\d+/gim, `$1${answerPort}`);
}

// DELETEs a session's Location; its status, or null (and why) on a network error.
async function del(s) {
  if (!s.location) return;
  try {
    s.deleteStatus = (await request('DELETE', s.location, null)).status;
  } catch (e) {
    s.deleteStatus = null;
    s.deleteError = String(e.message || e);
  }
}

// Keeps the first 20 samples and the latest ones (a --hold run may be long).
const keep = (samples, s) => {
  samples.push(s);
  if (samples.length > 400) samples.splice(20, 1);
};

async function whep() {
  const sessions = [...Array(count).keys()].map((i) => ({ i, history: [] }));
  const who = (i) => (count > 1 ? `viewer ${i}: ` : '');
  // Seconds since a viewer's first decoded frame (at its latest sample), and
  // the frames a second it decoded since.
  const played = (s) => (s.firstDecodedAt && s.history.length ? (s.history[s.history.length - 1][0] - s.firstDecodedAt) / 1000 : 0);
  const fps = (s) => (played(s) > 0 ? Math.round((s.last.framesDecoded - 1) / played(s) * 10) / 10 : 0);
  try {
    // All offers at once, then all POSTs at once: K independent sessions.
    const settled = await Promise.allSettled(sessions.map(async (s) => {
      s.offer = await within(page.evaluate((i) => window.rill.whepOffer(i), s.i), 15000, `${who(s.i)}createOffer`);
      await post(s, s.offer, who(s.i));
      await within(page.evaluate(([i, sdp]) => window.rill.whepAnswer(i, sdp), [s.i, s.answer]),
        10000, `${who(s.i)}setRemoteDescription`);
    }));
    const bad = settled.find((x) => x.status === 'rejected');
    if (bad) throw bad.reason;

    const deadline = Date.now() + timeout * 1000;
    result.samples = [];
    for (;;) {
      const tick = Date.now();
      const ss = await within(page.evaluate((n) => Promise.all([...Array(n).keys()].map((i) => window.rill.whepSample(i))), count),
        10000, 'getStats');
      const now = Date.now();
      let done = true;
      ss.forEach((x, i) => {
        const s = sessions[i];
        s.last = x;
        if (x.firstDecodedAt === null && x.framesDecoded > 0) x.firstDecodedAt = now;
        s.firstDecodedAt = x.firstDecodedAt;
        s.history.push([now, x.framesDecoded]);
        if (['failed', 'closed'].includes(x.connectionState)) {
          throw fail(`${who(i)}connectionState ${x.connectionState} after ${(now - s.postAt) / 1000} s, ${x.framesDecoded} frames decoded`);
        }
        // Still decoding: more frames now than about 2 s ago.
        const before = s.history.filter(([at]) => at <= now - 2000).pop() || s.history[0];
        const fresh = x.framesDecoded > before[1];
        if (!(s.firstDecodedAt && now - s.firstDecodedAt >= seconds * 1000 && fresh)) done = false;
      });
      const x = ss[0];
      keep(result.samples, {
        t: Math.round((now - sessions[0].postAt) / 100) / 10,
        fd: x.framesDecoded,
        fr: x.framesReceived,
        w: x.width,
        h: x.height,
        lost: x.packetsLost,
        jb: x.jitterBufferEmittedCount ? Math.round(x.jitterBufferDelay / x.jitterBufferEmittedCount * 1000) : null,
        ap: x.audioPackets,
        ab: x.audioBytes,
        as: x.audioSamples,
        ct: Math.round(x.currentTime * 100) / 100,
        vf: x.videoFrames,
        cs: x.connectionState,
      });
      if (done) break;
      if (now >= deadline) {
        const late = sessions.filter((s) => !s.firstDecodedAt || now - s.firstDecodedAt < seconds * 1000 || s.history.length < 2);
        throw fail(`timeout: not ${seconds} s of decoded video within ${timeout} s; ${late.length} of ${count} viewers short, e.g. `
          + late.slice(0, 3).map((s) => `${who(s.i)}${s.last.framesDecoded} frames decoded, ${s.last.framesReceived} received, `
            + `${s.last.videoPackets} video + ${s.last.audioPackets} audio packets, ${s.last.connectionState}/${s.last.iceConnectionState}`
            + `${s.firstDecodedAt ? `, first frame ${(s.firstDecodedAt - s.postAt) / 1000} s after the POST` : ''}`
            + `${s.last.errors.length ? ` (${s.last.errors.join('; ')})` : ''}`).join(' | '));
      }
      await sleep(500 - (Date.now() - tick));
    }
    const empty = sessions.filter((s) => !(s.last.framesDecoded > 0));
    if (empty.length) throw fail(`${empty.length} of ${count} viewers decoded no frames`);
    const slow = sessions.filter((s) => fps(s) < minFps);
    if (slow.length) {
      throw fail(`${slow.length} of ${count} viewers decoded under ${minFps} frames/s: `
        + slow.slice(0, 3).map((s) => `${who(s.i)}${fps(s)} (${s.last.framesDecoded} of ${s.last.framesReceived} frames received decoded)`).join(', '));
    }
  } finally {
    // Summary: viewer 0's; then DELETE every session that has a Location.
    const s = sessions[0];
    const x = s.last || {};
    Object.assign(result, {
      status: s.status ?? null,
      location: s.location ?? null,
      contentType: s.contentType ?? null,
      videoCodec: x.videoCodec ?? null,
      videoFmtp: x.videoFmtp ?? null,
      audioCodec: x.audioCodec ?? null,
      framesDecoded: x.framesDecoded ?? 0,
      framesReceived: x.framesReceived ?? 0,
      framesDropped: x.framesDropped ?? 0,
      width: x.width ?? 0,
      height: x.height ?? 0,
      videoPackets: x.videoPackets ?? 0,
      audioPackets: x.audioPackets ?? 0,
      audioBytes: x.audioBytes ?? 0,
      audioSamples: x.audioSamples ?? 0,
      packetsLost: x.packetsLost ?? 0,
      jitterBufferMs: x.jitterBufferEmittedCount ? Math.round(x.jitterBufferDelay / x.jitterBufferEmittedCount * 1000) : null,
      freezeCount: x.freezeCount ?? 0,
      nackCount: x.nackCount ?? 0,
      retransmitted: x.retransmitted ?? 0,
      firstFrameMs: s.firstDecodedAt ? s.firstDecodedAt - s.postAt : null,
      firstRenderMs: x.firstRenderedAt ? x.firstRenderedAt - s.postAt : null,
      playedSeconds: played(s),
      decodedFps: s.last ? fps(s) : 0,
      currentTime: x.currentTime ?? 0,
      videoFrames: x.videoFrames ?? 0,
      connectionState: x.connectionState ?? null,
      iceConnectionState: x.iceConnectionState ?? null,
      remote: x.remote ?? null,
      count,
      viewers: sessions.map((v) => (v.last ? v.last.framesDecoded : 0)),
      viewerFirstFrameMs: sessions.map((v) => (v.firstDecodedAt ? v.firstDecodedAt - v.postAt : null)),
      viewerPlayedSeconds: sessions.map(played),
      viewerFps: sessions.map((v) => (v.last ? fps(v) : 0)),
      statuses: sessions.map((v) => v.status ?? null),
    });
    if (withSdp) Object.assign(result, { offer: s.offer ?? null, answer: s.answer ?? null });
    await Promise.all(sessions.map(del));
    result.deleteStatus = s.deleteStatus ?? null;
    if (s.deleteError) result.deleteError = s.deleteError;
    result.deleteStatuses = sessions.map((v) => v.deleteStatus ?? null);
    await within(page.evaluate(() => window.rill.close()), 5000, 'close').catch(() => {});
  }
}

async function whip() {
  const s = {};
  let last = {};
  let connectedAt = null;
  result.samples = [];
  const sample = async () => {
    last = await within(page.evaluate(() => window.rill.whipSample()), 10000, 'getStats');
    const now = Date.now();
    keep(result.samples, {
      t: Math.round((now - s.postAt) / 100) / 10,
      fe: last.framesEncoded,
      vp: last.videoPacketsSent,
      vb: last.videoBytesSent,
      ap: last.audioPacketsSent,
      w: last.width,
      h: last.height,
      fps: last.fps,
      cs: last.connectionState,
    });
    if (last.connectionState === 'failed' || last.connectionState === 'closed') {
      throw fail(`connectionState ${last.connectionState} after ${(now - s.postAt) / 1000} s`
        + `${connectedAt ? `, ${(now - connectedAt) / 1000} s after connecting` : ''}, ${last.framesEncoded} frames encoded`);
    }
    return now;
  };
  try {
    const o = await within(page.evaluate((a) => window.rill.whipOffer(a),
      { videoCodec, only: flag('only-codec'), width: 640, height: 360, fps: 25 }), 15000, 'getUserMedia/createOffer');
    s.offer = o.sdp;
    result.offered = o.offered;
    result.tracks = o.tracks;
    await post(s, s.offer, '');
    await within(page.evaluate((sdp) => window.rill.whipAnswer(sdp), s.answer), 10000, 'setRemoteDescription');

    // Connect within --timeout of the POST.
    const deadline = s.postAt + timeout * 1000;
    for (;;) {
      const tick = Date.now();
      const now = await sample();
      if (last.connectionState === 'connected') {
        connectedAt = now;
        break;
      }
      if (now >= deadline) {
        throw fail(`timeout: connectionState ${last.connectionState}/${last.iceConnectionState} ${timeout} s after the POST`);
      }
      await sleep(100 - (Date.now() - tick)); // polled tighter until connected, for connectMs
    }
    result.connectMs = connectedAt - s.postAt;
    if (hold) {
      clearTimeout(watchdog);
      emit({ connected: true, mode, url, status: s.status, location: s.location, connectMs: result.connectMs,
        videoCodec: last.videoCodec, audioCodec: last.audioCodec, offered: result.offered });
    }

    // Publish N seconds (or, --hold, until asked to stop), sampling every
    // 500 ms; sleeps in short steps, to stop promptly.
    for (let tick = Date.now(); ;) {
      while (Date.now() - tick < 500 && !(hold && stopAsked)) await sleep(Math.min(100, 500 - (Date.now() - tick)));
      tick = Date.now();
      const now = await sample();
      if (hold ? stopAsked : now - connectedAt >= seconds * 1000) break;
    }
    if (!(last.framesEncoded > 0)) throw fail(`connected but no video frame encoded (${last.encoder || 'no encoder'})`);
  } finally {
    Object.assign(result, {
      status: s.status ?? null,
      location: s.location ?? null,
      contentType: s.contentType ?? null,
      videoCodec: last.videoCodec ?? null,
      videoFmtp: last.videoFmtp ?? null,
      audioCodec: last.audioCodec ?? null,
      framesEncoded: last.framesEncoded ?? 0,
      keyFramesEncoded: last.keyFramesEncoded ?? 0,
      width: last.width ?? 0,
      height: last.height ?? 0,
      fps: last.fps ?? 0,
      videoPacketsSent: last.videoPacketsSent ?? 0,
      videoBytesSent: last.videoBytesSent ?? 0,
      audioPacketsSent: last.audioPacketsSent ?? 0,
      audioBytesSent: last.audioBytesSent ?? 0,
      nackCount: last.nackCount ?? 0,
      pliCount: last.pliCount ?? 0,
      firCount: last.firCount ?? 0,
      encoder: last.encoder ?? null,
      qualityLimitation: last.qualityLimitation ?? null,
      connectMs: result.connectMs ?? null,
      publishedSeconds: connectedAt ? (Date.now() - connectedAt) / 1000 : 0,
      connectionState: last.connectionState ?? null,
      iceConnectionState: last.iceConnectionState ?? null,
      remote: last.remote ?? null,
    });
    if (withSdp) Object.assign(result, { offer: s.offer ?? null, answer: s.answer ?? null });
    await del(s);
    result.deleteStatus = s.deleteStatus ?? null;
    if (s.deleteError) result.deleteError = s.deleteError;
    await within(page.evaluate(() => window.rill.close()), 5000, 'close').catch(() => {});
  }
}

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    // --hold: our handlers stop publishing; Playwright's would kill Chromium.
    handleSIGTERM: !hold,
    handleSIGINT: !hold,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      // Fake camera (a moving test pattern, here at 25 fps) and microphone
      // (a beep), allowed without a prompt.
      '--use-fake-device-for-media-stream=fps=25',
      '--use-fake-ui-for-media-stream',
      // Real host addresses in the offer instead of mDNS *.local names, and
      // loopback interfaces too (the server may be on 127.0.0.1 only).
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--allow-loopback-in-peer-connection',
    ],
  });
  result.browser = browser.version();
  page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    console.error(`chromium console.${m.type()}: ${m.text()}`);
    if (result.console.length < 20) result.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => {
    console.error(`chromium pageerror: ${e}`);
    if (result.console.length < 20) result.console.push(`pageerror: ${e}`);
  });
  await page.goto(pageUrl, { timeout: 15000 });
  await (mode === 'whep' ? whep() : whip());
} catch (e) {
  result.fatal = e && e.expected ? e.message : String(e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
result.elapsed = (Date.now() - started) / 1000;
emit(result);
process.exit(result.fatal ? 2 : 0);
