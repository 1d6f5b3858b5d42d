// Drives one of this directory's test pages (hls.html, mse.html) in headless
// Chromium and reports what its <video> did, for tests/tests/browser_hls.rs.
//
//   node drive.mjs <page.html> [--query 'src=...&...'] [--until S] [--timeout S]
//
// Serves the page and the player libraries from a throwaway HTTP server on a
// free loopback port (the media comes from Rill, another origin). Samples the
// <video> and the page's window.rill.stats() every 250 ms and prints each
// sample as a line `sample {json}` as it goes, so the caller can act while
// the page plays; stops when the video has played `until` seconds since its
// first `playing` event, after `timeout` seconds, or when a line `stop`
// arrives on stdin; then prints `result {json}` (the samples, the page's
// errors and events). Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM);
// playwright-core never downloads a browser. Exits 0 with a result whatever
// the page did (the caller asserts); 2 when the browser could not be driven.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const pageFile = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const until = Number(opt('until', 5));
const timeout = Number(opt('timeout', 20));
const query = opt('query', '');
if (!pageFile || !/^[a-z0-9_-]+\.html$/.test(pageFile)) {
  console.error("usage: node drive.mjs <page.html> [--query 'src=...'] [--until S] [--timeout S]");
  process.exit(2);
}

const files = {
  [`/${pageFile}`]: [pageFile, 'text/html; charset=utf-8'],
  '/hls.js': ['node_modules/hls.js/dist/hls.min.js', 'text/javascript'],
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
const pageUrl = `http://127.0.0.1:${server.address().port}/${pageFile}?${query}`;

let stopAsked = false;
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'stop') stopAsked = true;
});

const started = Date.now();
// Whatever hangs, answer within launch + load + polling + slack.
setTimeout(() => {
  console.log(`result ${JSON.stringify({ page: pageUrl, fatal: ['drive.mjs watchdog: no result in time'] })}`);
  process.exit(2);
}, (timeout + 40) * 1000).unref();
let browser;
const result = { page: pageUrl, samples: [], console: [] };
let driverError = null;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 20000,
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
    if (result.console.length < 100) result.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => result.console.push(`pageerror: ${e}`));
  await page.goto(pageUrl, { timeout: 10000 });
  const t0 = Date.now();
  for (;;) {
    const s = await page.evaluate(() => {
      const v = document.getElementById('v');
      const q = v.getVideoPlaybackQuality();
      return {
        currentTime: v.currentTime,
        start: window.rill.start,
        totalVideoFrames: q.totalVideoFrames,
        droppedVideoFrames: q.droppedVideoFrames,
        readyState: v.readyState,
        paused: v.paused,
        audioDecodedBytes: v.webkitAudioDecodedByteCount,
        ...window.rill.stats(),
      };
    });
    s.wall = (Date.now() - t0) / 1000;
    s.epochMs = Date.now();
    s.played = s.start === null ? 0 : s.currentTime - s.start;
    result.samples.push(s);
    console.log(`sample ${JSON.stringify(s)}`);
    if (s.played >= until || stopAsked || Date.now() - t0 >= timeout * 1000) break;
    await new Promise((ok) => setTimeout(ok, 250));
  }
  Object.assign(result, await page.evaluate(() => {
    const { stats, ...rest } = window.rill;
    return { ...rest, userAgent: navigator.userAgent };
  }));
} catch (e) {
  driverError = String(e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
result.driverError = driverError;
result.last = result.samples[result.samples.length - 1] || null;
result.elapsed = (Date.now() - started) / 1000;
console.log(`result ${JSON.stringify(result)}`);
process.exit(driverError ? 2 : 0);
