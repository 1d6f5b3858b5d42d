// Plays an HTTP-FLV URL in headless Chromium through mpegts.js and prints one
// JSON line: how far the <video> played and how many frames it decoded.
//
//   node play.mjs <flv-url> [--until SECONDS] [--timeout SECONDS]
//
// Serves index.html and mpegts.js's dist file from a throwaway HTTP server on
// a free loopback port (the FLV comes from another origin; Rill sends
// access-control-allow-origin: *). Chromium is Debian's (/usr/bin/chromium,
// or $CHROMIUM); playwright-core never downloads a browser.
// Exits 0 with the result whatever the page did (the caller asserts); exits 2
// when the browser could not be driven at all.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const src = args.find((a) => !a.startsWith('--'));
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const until = opt('until', 5); // stop once currentTime reaches this
const timeout = opt('timeout', 15); // or after this many seconds of polling
if (!src) {
  console.error('usage: node play.mjs <flv-url> [--until S] [--timeout S]');
  process.exit(2);
}

const files = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/mpegts.js': ['node_modules/mpegts.js/dist/mpegts.js', 'text/javascript'],
};
const server = http.createServer((req, res) => {
  const f = files[new URL(req.url, 'http://x').pathname];
  if (!f) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' });
  fs.createReadStream(path.join(here, f[0])).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const page_url = `http://127.0.0.1:${server.address().port}/?src=${encodeURIComponent(src)}`;

const started = Date.now();
// Whatever hangs, answer within launch + load + polling + slack.
setTimeout(() => {
  console.log(JSON.stringify({ src, fatal: 'play.mjs watchdog: no result in time' }));
  process.exit(2);
}, (timeout + 40) * 1000).unref();
let browser;
const result = { src, samples: [], console: [] };
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 20000,
    // A fresh profile dir is Playwright's default for launch().
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  result.browser = browser.version();
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (result.console.length < 50) result.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => result.console.push(`pageerror: ${e}`));
  await page.goto(page_url, { timeout: 10000 });
  const t0 = Date.now();
  for (;;) {
    const s = await page.evaluate(() => {
      const v = document.getElementById('v');
      const q = v.getVideoPlaybackQuality();
      return {
        currentTime: v.currentTime,
        totalVideoFrames: q.totalVideoFrames,
        droppedVideoFrames: q.droppedVideoFrames,
        readyState: v.readyState,
        paused: v.paused,
        videoDecodedBytes: v.webkitVideoDecodedByteCount,
        audioDecodedBytes: v.webkitAudioDecodedByteCount,
      };
    });
    s.wall = (Date.now() - t0) / 1000;
    result.samples.push(s);
    if (s.currentTime >= until || Date.now() - t0 >= timeout * 1000) break;
    await new Promise((ok) => setTimeout(ok, 250));
  }
  Object.assign(result, await page.evaluate(() => ({
    supported: window.rill.supported,
    mse: window.rill.mse,
    errors: window.rill.errors,
    events: window.rill.events,
    mediaInfo: window.rill.mediaInfo
      ? (({ mimeType, videoCodec, audioCodec, width, height, fps }) =>
          ({ mimeType, videoCodec, audioCodec, width, height, fps }))(window.rill.mediaInfo)
      : null,
    userAgent: navigator.userAgent,
  })));
  const last = result.samples[result.samples.length - 1];
  result.currentTime = last.currentTime;
  result.totalVideoFrames = last.totalVideoFrames;
  result.droppedVideoFrames = last.droppedVideoFrames;
  result.audioDecodedBytes = last.audioDecodedBytes;
} catch (e) {
  result.fatal = String(e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
result.elapsed = (Date.now() - started) / 1000;
console.log(JSON.stringify(result));
process.exit(result.fatal ? 2 : 0);
