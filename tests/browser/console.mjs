// Drives Rill's web console in headless Chromium for tests/tests/console.rs,
// one command at a time: the test writes a JSON command per line on stdin
// and reads one JSON answer per line on stdout, so it can act on the server
// (publish, start a player, change a plugin file) between browser steps.
//
//   node console.mjs            (commands on stdin, answers on stdout)
//
// Commands ({"cmd": ..., ...}); every answer has `ok` and, when not ok,
// `error`:
//   open {url, width?, height?}      a fresh browser context (no cookies) and page at url
//   goto {url}                       the same page, another URL (e.g. a #/route)
//   viewport {width, height}
//   wait {selector, text?, state?, timeout?}
//                                    until selector is visible (state: attached,
//                                    detached, hidden) and, given text, contains it;
//                                    answers {ms, text}
//   waitFor {js, timeout?}           until the page expression js is truthy; {ms, value}
//   eval {js}                        {value} of a page expression
//   count {selector}                 {count} of matching elements
//   text {selector}                  {text} of the first match
//   click {selector}
//   fill {selector, value}           types value into an input (replacing it)
//   check {selector, checked}
//   select {selector, value}
//   shot {path, fullPage?}           a PNG screenshot
//   cookies                          {cookies} of the context
//   errors                           {errors}: console errors and page errors so far
//   close                            closes Chromium and exits
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM); playwright-core
// never downloads one. Chromium's console errors also go to stderr.
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 30000,
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
    // WebRTC to a server on 127.0.0.1: real addresses, loopback allowed.
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    '--allow-loopback-in-peer-connection',
  ],
});

let context = null;
let page = null;
const errors = [];

async function open(c) {
  if (context) await context.close();
  context = await browser.newContext({
    viewport: { width: c.width || 1280, height: c.height || 900 },
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write']).catch(() => {});
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = m.location() && m.location().url ? ` (${m.location().url})` : '';
    console.error(`chromium console.error: ${m.text()}${where}`);
    errors.push({ text: m.text(), url: (m.location() && m.location().url) || '' });
  });
  page.on('pageerror', (e) => {
    console.error(`chromium pageerror: ${e}`);
    errors.push({ text: `pageerror: ${e}`, url: '' });
  });
  await page.goto(c.url, { timeout: 15000 });
  return {};
}

const commands = {
  open,
  goto: async (c) => {
    await page.goto(c.url, { timeout: 15000 });
    return {};
  },
  viewport: async (c) => {
    await page.setViewportSize({ width: c.width, height: c.height });
    return {};
  },
  wait: async (c) => {
    const t = Date.now();
    const loc = page.locator(c.selector).first();
    await loc.waitFor({ state: c.state || 'visible', timeout: c.timeout || 10000 });
    if (c.text !== undefined) {
      await page.locator(c.selector).filter({ hasText: c.text }).first()
        .waitFor({ state: 'attached', timeout: c.timeout || 10000 });
    }
    const text = ['detached', 'hidden'].includes(c.state) ? null : await loc.textContent().catch(() => null);
    return { ms: Date.now() - t, text };
  },
  // Polled from here with page.evaluate: waitForFunction would eval() the
  // expression inside the page, which the console's CSP forbids.
  waitFor: async (c) => {
    const t = Date.now();
    for (;;) {
      const value = await page.evaluate(c.js);
      if (value) return { ms: Date.now() - t, value };
      if (Date.now() - t > (c.timeout || 10000)) throw new Error(`waitFor: still ${JSON.stringify(value)} after ${c.timeout || 10000} ms: ${c.js}`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  },
  eval: async (c) => ({ value: await page.evaluate(c.js) }),
  count: async (c) => ({ count: await page.locator(c.selector).count() }),
  text: async (c) => ({ text: await page.locator(c.selector).first().textContent({ timeout: 5000 }) }),
  click: async (c) => {
    await page.locator(c.selector).first().click({ timeout: c.timeout || 5000 });
    return {};
  },
  fill: async (c) => {
    await page.locator(c.selector).first().fill(c.value, { timeout: 5000 });
    return {};
  },
  check: async (c) => {
    await page.locator(c.selector).first().setChecked(c.checked, { timeout: 5000 });
    return {};
  },
  select: async (c) => {
    await page.locator(c.selector).first().selectOption(c.value, { timeout: 5000 });
    return {};
  },
  shot: async (c) => {
    await page.screenshot({ path: c.path, fullPage: c.fullPage !== false });
    return {};
  },
  cookies: async () => ({ cookies: await context.cookies() }),
  errors: async () => ({ errors }),
};

// Nothing may hang the test: a command gets 60 s at most.
const within = (p, ms) => Promise.race([
  p,
  new Promise((_, fail) => setTimeout(() => fail(new Error(`no answer in ${ms / 1000} s`)), ms).unref()),
]);

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    emit({ ok: false, error: `not JSON: ${e.message}` });
    continue;
  }
  if (c.cmd === 'close') break;
  const f = commands[c.cmd];
  if (!f) {
    emit({ ok: false, error: `no command ${c.cmd}` });
    continue;
  }
  try {
    emit({ ok: true, ...(await within(f(c), 60000)) });
  } catch (e) {
    emit({ ok: false, error: String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n') });
  }
}
await browser.close().catch(() => {});
process.exit(0);
