#!/usr/bin/env node
// Open a running Dagster UI in Debian's Chromium (driven by playwright-core, no browser download),
// check that the asset catalog lists every asset and that the global asset lineage graph renders
// every group and asset node, and save screenshots of both.
//
// Usage:
//   node scripts/ui_browser_check.mjs --url http://127.0.0.1:3000 --out-dir DIR \
//        --assets a,b,c --groups bronze,silver,gold [--chromium /usr/bin/chromium] [--timeout-ms 60000]
//
// Prints one JSON line on stdout: {"ok": true, "lineage_screenshot": ".../ui_lineage.png",
// "catalog_screenshot": ".../ui_catalog.png", "lineage_nodes": N, "page_errors": [...]}.
// Exits 1 (after saving DIR/ui_failure.png when a page was open) if anything is missing; exits 2
// on bad arguments or when playwright-core cannot be loaded (run `npm ci` at the repository root).

import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { launchChromium } from './chromium.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    'out-dir': { type: 'string' },
    assets: { type: 'string', default: '' },
    groups: { type: 'string', default: '' },
    chromium: { type: 'string', default: process.env.CHROMIUM_PATH || '/usr/bin/chromium' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
});
if (!args.url || !args['out-dir']) {
  console.error('usage: ui_browser_check.mjs --url URL --out-dir DIR [--assets a,b] [--groups g,h] [--chromium PATH]');
  process.exit(2);
}

const baseUrl = args.url.replace(/\/$/, '');
const outDir = resolve(args['out-dir']);
const timeout = Number(args['timeout-ms']);
const expectedAssets = args.assets.split(',').filter(Boolean);
const expectedGroups = args.groups.split(',').filter(Boolean);
mkdirSync(outDir, { recursive: true });

const browser = await launchChromium(args.chromium);
// Twice the pixels of the CSS layout, so the node names of the zoomed-out lineage stay legible.
const page = await browser.newPage({ viewport: { width: 1920, height: 1200 }, deviceScaleFactor: 2 });
page.setDefaultTimeout(timeout);
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(error.message));

// A fresh Dagster instance greets the first visitor with a "Join the Dagster community" dialog that
// covers the page; dismiss it when it shows (it is remembered by the instance afterwards).
async function dismissWelcomeDialog() {
  const skip = page.getByRole('button', { name: 'Skip', exact: true });
  try {
    await skip.waitFor({ state: 'visible', timeout: 3000 });
    await skip.click();
    await skip.waitFor({ state: 'hidden' });
  } catch {
    // No dialog: nothing to dismiss.
  }
}

// True when every asset node and group title of the lineage graph lies inside the graph's own pane
// (below its toolbar, left of its zoom controls, with a margin), so none is cut off in the screenshot.
async function allNodesInView(nodes, margin = 24) {
  const pane = await page.locator('[data-svg-viewport]').first().boundingBox({ timeout: 2000 }).catch(() => null);
  const zoomControls = await page.locator('[data-zoom-control]').first().boundingBox({ timeout: 2000 }).catch(() => null);
  if (!pane) return false;
  // The toolbar (asset search, Materialize) floats over the top of the pane: its row is the search
  // box's closest ancestor spanning most of the pane's width.
  const toolbarBottom = await page.locator('[aria-label="Search and filter assets"]').first().evaluate((search, paneWidth) => {
    for (let element = search; element; element = element.parentElement) {
      const rect = element.getBoundingClientRect();
      if (rect.width >= 0.8 * paneWidth) return rect.bottom;
    }
    return null;
  }, pane.width, { timeout: 2000 }).catch(() => null);
  const left = pane.x + margin;
  const top = Math.max(pane.y, toolbarBottom ?? pane.y) + margin;
  const right = Math.min(pane.x + pane.width, zoomControls ? zoomControls.x : Infinity) - margin;
  const bottom = Math.min(pane.y + pane.height, page.viewportSize().height) - margin;
  const groupTitles = expectedGroups.map((group) => page.locator(`[data-tooltip="${group}"]`).first());
  const elements = [...(await nodes.all()), ...groupTitles];
  for (const box of await Promise.all(elements.map((element) => element.boundingBox({ timeout: 2000 }).catch(() => null)))) {
    if (!box || box.x < left || box.y < top || box.x + box.width > right || box.y + box.height > bottom) return false;
  }
  return true;
}

try {
  // 1. The catalog links every asset to its page. Its table renders only the rows in view, so the
  //    window is made tall enough for all of them (under 64 px a row).
  await page.setViewportSize({ width: 1920, height: Math.max(1200, 300 + 64 * expectedAssets.length) });
  await page.goto(`${baseUrl}/assets`, { waitUntil: 'networkidle' });
  await dismissWelcomeDialog();
  for (const asset of expectedAssets) {
    await page.locator(`a[href="/assets/${asset.split('/').map(encodeURIComponent).join('/')}"]`).first().waitFor({ state: 'visible' });
  }
  const catalogScreenshot = resolve(outDir, 'ui_catalog.png');
  await page.screenshot({ path: catalogScreenshot });
  // A graph of several products is wide: give it a screen that holds it with readable nodes.
  await page.setViewportSize(expectedAssets.length > 30 ? { width: 3840, height: 2400 } : { width: 1920, height: 1200 });

  // 2. The global asset lineage (/asset-groups in Dagster 1.13; "Lineage" in the navigation).
  //    Groups start collapsed: expand them all from the graph's settings menu, then reload so the
  //    graph is laid out and fitted to the viewport with every asset node.
  await page.goto(`${baseUrl}/asset-groups`, { waitUntil: 'networkidle' });
  await dismissWelcomeDialog();
  for (const group of expectedGroups) {
    await page.locator(`[data-tooltip="${group}"]`).first().waitFor({ state: 'attached' });
  }
  await page.locator('[aria-label="settings"]').last().click();
  const expandAll = page.getByRole('menuitem', { name: /Expand all groups/ });
  if (await expandAll.isVisible()) {
    await expandAll.click();
  } else {
    await page.keyboard.press('Escape'); // already expanded (the menu offers "Collapse all groups")
  }
  await page.reload({ waitUntil: 'networkidle' });
  // More room for the graph: hide the asset tree beside it (optional; the graph is checked either way).
  await page.locator('button:not([class*="MainNavigation"]):has([aria-label="panel_show_right"])').first()
    .click({ timeout: 3000 }).catch(() => {});
  // The graph renders only the nodes inside its pane, and a large graph can overflow the first fit:
  // zoom out until every asset node is rendered and in view. At that zoom the nodes show shortened
  // names, so they are counted rather than read (the catalog above checked the names).
  const nodes = page.locator('[class*="AssetNode_assetName"]');
  await nodes.first().waitFor({ state: 'attached' });
  const seen = [];
  for (let zoomOuts = 0; ; zoomOuts++) {
    await page.waitForTimeout(400);
    const shown = await nodes.count();
    const inView = shown >= expectedAssets.length && (await allNodesInView(nodes));
    seen.push(`${shown}${inView ? '' : '*'}`);
    if (inView) break;
    if (zoomOuts === 12) {
      throw new Error(`the lineage graph shows ${shown} of ${expectedAssets.length} asset nodes in view after zooming out ${zoomOuts} times (nodes rendered at each zoom, * = not all in view: ${seen.join(' ')})`);
    }
    await page.locator('[aria-label="zoom_out"]').click();
  }
  // Then zoom in as far as the whole graph still fits, so the names are as large as they can be.
  for (let zoomIns = 0; zoomIns < 6; zoomIns++) {
    await page.locator('[aria-label="zoom_in"]').click();
    await page.waitForTimeout(400);
    if ((await nodes.count()) < expectedAssets.length || !(await allNodesInView(nodes))) {
      await page.locator('[aria-label="zoom_out"]').click();
      break;
    }
  }
  await page.waitForTimeout(500); // let the zoom transition settle before the picture
  const lineageScreenshot = resolve(outDir, 'ui_lineage.png');
  await page.screenshot({ path: lineageScreenshot });

  console.log(JSON.stringify({
    ok: true,
    lineage_screenshot: lineageScreenshot,
    catalog_screenshot: catalogScreenshot,
    lineage_nodes: await nodes.count(),
    page_errors: pageErrors,
  }));
} catch (error) {
  const failureScreenshot = resolve(outDir, 'ui_failure.png');
  await page.screenshot({ path: failureScreenshot, fullPage: true }).catch(() => {});
  console.log(JSON.stringify({ ok: false, error: String(error?.message ?? error), failure_screenshot: failureScreenshot, url: page.url(), page_errors: pageErrors }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
