// Loads every console page in Debian's headless Chromium and fails on any
// console error, page error, failed request or 4xx/5xx answer; asserts the
// SLO cards show real numbers (a percentage, not "no data") and the cost
// page says what it measures (figures, or that cost is not measured); takes
// full-page screenshots at a desktop and a phone viewport.
//
//   node check-pages.mjs CONSOLE_URL SCREENSHOT_DIR
//
// CHROMIUM overrides the browser (default /usr/bin/chromium). playwright-core
// drives it over CDP; it never downloads a browser.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node check-pages.mjs CONSOLE_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const viewports = [
  { name: 'desktop', width: 1280, height: 800, isMobile: false },
  { name: 'phone', width: 390, height: 844, isMobile: true },
];

// The SLO detail page of the first SLO, from the JSON API.
const slos = await (await fetch(new URL('/api/v1/slos', base))).json();
const firstSlo = slos.slos?.[0]?.id;
if (!firstSlo) throw new Error('the console lists no SLO');
const pages = [
  ['overview', '/'],
  ['slos', '/slos'],
  ['slo', `/slos/${encodeURIComponent(firstSlo)}`],
  ['alerts', '/alerts'],
  ['changes', '/changes'],
  ['canaries', '/canaries'],
  ['models', '/models'],
  ['cost', '/cost'],
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const problems = [];
try {
  for (const viewport of viewports) {
    const context = await browser.newContext({
      viewport: { width: viewport.width, height: viewport.height },
      isMobile: viewport.isMobile,
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    let current = '';
    page.on('console', (m) => {
      // Chromium asks every site for /favicon.ico on its own; the console
      // has none, and that is not an error of the page.
      if (m.location()?.url?.endsWith('/favicon.ico')) return;
      if (m.type() === 'error') problems.push(`${viewport.name} ${current}: console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`${viewport.name} ${current}: page error: ${e.message}`));
    page.on('requestfailed', (r) =>
      problems.push(`${viewport.name} ${current}: request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`${viewport.name} ${current}: ${r.status()} for ${r.url()}`);
    });
    for (const [name, path] of pages) {
      current = path;
      const response = await page.goto(new URL(path, base).href, { waitUntil: 'load', timeout: 20000 });
      if (!response || response.status() !== 200) {
        problems.push(`${viewport.name} ${path}: answered ${response?.status()}`);
      }
      if (name === 'slos' || name === 'slo') {
        const numbers = await page.locator('.card span.big').allInnerTexts();
        const percentages = numbers.filter((t) => /^\d+(\.\d+)?%$/.test(t.trim()));
        if (percentages.length === 0) {
          problems.push(`${viewport.name} ${path}: no SLO card shows a percentage (${JSON.stringify(numbers)})`);
        }
      }
      if (name === 'cost') {
        // Measured (a chart or the empty state) or not: the page says which.
        const said = await page.locator('main .notice, main svg, main p.muted').count();
        if (said === 0) problems.push(`${viewport.name} ${path}: the cost page shows neither figures nor a notice`);
      }
      const file = join(shots, `${name}-${viewport.name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(`ok ${viewport.name} ${path} -> ${file}`);
    }
    await context.close();
  }
} finally {
  await browser.close();
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`all ${pages.length} pages clean at ${viewports.length} viewports`);
