#!/usr/bin/env node
// Drive the trader's screen (`spymaster serve`) in Debian's Chromium with playwright-core: pick a
// session, play it as fast as possible up to a bar, check that the candles, the level lines and the
// probability panel updated, click the first neighbour and check that its past session opens marked
// at that bar; save a screenshot of each page.
//
// Usage:
//   node scripts/screen_browser_check.mjs --url http://127.0.0.1:8050 --date 2013-10-11 --until 10:30 \
//        --out-dir DIR [--chromium /usr/bin/chromium] [--timeout-ms 120000]
//
// Prints one JSON line on stdout: {"ok": true, "screenshot": ".../screen_replay.png",
// "neighbour_screenshot": ".../screen_neighbour.png", "bars": N, "answers": N, "levels": [...],
// "neighbour": {"date", "time"}, "page_errors": [...]}. Exits 1 (after saving DIR/screen_failure.png)
// when something is missing; 2 on bad arguments or without playwright-core (`npm ci`).

import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { launchChromium } from './chromium.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    product: { type: 'string', default: '' },
    date: { type: 'string' },
    until: { type: 'string', default: '' },
    'out-dir': { type: 'string' },
    chromium: { type: 'string', default: process.env.CHROMIUM_PATH || '/usr/bin/chromium' },
    'timeout-ms': { type: 'string', default: '120000' },
  },
});
if (!args.url || !args.date || !args['out-dir']) {
  console.error('usage: screen_browser_check.mjs --url URL [--product SYMBOL] --date YYYY-MM-DD [--until HH:MM] --out-dir DIR [--chromium PATH]');
  process.exit(2);
}

const baseUrl = args.url.replace(/\/$/, '');
const outDir = resolve(args['out-dir']);
const timeout = Number(args['timeout-ms']);
mkdirSync(outDir, { recursive: true });

const browser = await launchChromium(args.chromium);
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
page.setDefaultTimeout(timeout);
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(String(error)));

const result = { ok: false, page_errors: pageErrors };
function fail(message) {
  throw new Error(message);
}

try {
  await page.goto(args.product ? `${baseUrl}/?product=${encodeURIComponent(args.product)}&manual=1` : `${baseUrl}/`);
  await page.waitForSelector(`#session option[value="${args.date}"]`, { state: 'attached' });
  result.title = await page.title();
  result.product = await page.inputValue('#product');
  result.products = await page.$$eval('#product option', (nodes) => nodes.map((n) => n.value));
  await page.selectOption('#session', args.date);
  await page.selectOption('#speed', '0');
  await page.fill('#until', args.until);
  await page.click('#play');
  await page.waitForSelector('#status[data-state="ended"], #status[data-state="problem"]');
  const status = await page.textContent('#status');
  if ((await page.getAttribute('#status', 'data-state')) !== 'ended') fail(`replay did not finish: ${status}; ${await page.textContent('#problems')}`);
  result.bars = Number(await page.getAttribute('#chart', 'data-bars'));
  result.answers = Number(await page.getAttribute('#answers', 'data-count'));
  result.provenance = await page.textContent('#provenance');
  result.reliability = await page.textContent('#reliability');
  result.levels = await page.$$eval('.level h3', (nodes) => nodes.map((n) => n.textContent));
  const canvases = await page.$$eval('#chart canvas', (nodes) => nodes.length);
  if (!(result.bars > 100)) fail(`only ${result.bars} candles drawn`);
  if (!(result.answers > 0)) fail('the probability panel never showed an answer');
  if (!result.levels.length) fail(`no level in the approach zone at ${args.until}: choose another --until`);
  if (!result.provenance.includes(`index as of ${args.date}`)) fail(`the page does not say which index answered: ${result.provenance}`);
  if (!canvases) fail('no chart canvas');
  result.screenshot = resolve(outDir, 'screen_replay.png');
  await page.screenshot({ path: result.screenshot, fullPage: true });

  const first = page.locator('.neighbours li').first();
  result.neighbour = { date: await first.getAttribute('data-date'), time: await first.getAttribute('data-time') };
  await Promise.all([page.waitForURL((url) => url.search.includes(`date=${result.neighbour.date}`)), first.click()]);
  await page.waitForSelector('#status[data-state="ended"], #status[data-state="problem"]');
  if ((await page.getAttribute('#status', 'data-state')) !== 'ended') fail(`the neighbour's session did not open: ${await page.textContent('#problems')}`);
  const marked = await page.getAttribute('#chart', 'data-marked');
  if (marked !== result.neighbour.time) fail(`the neighbour's bar ${result.neighbour.time} is not marked (marked: ${marked})`);
  result.neighbour_bars = Number(await page.getAttribute('#chart', 'data-bars'));
  result.neighbour_screenshot = resolve(outDir, 'screen_neighbour.png');
  await page.screenshot({ path: result.neighbour_screenshot, fullPage: true });
  if (pageErrors.length) fail(`errors on the page: ${pageErrors.join('; ')}`);
  result.ok = true;
} catch (error) {
  result.error = String(error.message || error);
  await page.screenshot({ path: resolve(outDir, 'screen_failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
