// The cost page as a person sees it: loads /cost in Debian's headless
// Chromium, fails on console errors, page errors, failed requests and
// 4xx/5xx answers, takes a full-page screenshot, and prints the Modules
// table's rows in page order (most expensive first) as JSON on stdout.
//
//   node cost-question.mjs CONSOLE_URL SCREENSHOT_FILE
import { chromium } from 'playwright-core';

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error('usage: node cost-question.mjs CONSOLE_URL SCREENSHOT_FILE');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const problems = [];
let modules = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (m) => {
    if (m.location()?.url?.endsWith('/favicon.ico')) return;
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`);
  });
  const response = await page.goto(new URL('/cost?window=1h', base).href, { waitUntil: 'load', timeout: 20000 });
  if (!response || response.status() !== 200) problems.push(`/cost answered ${response?.status()}`);
  const rows = page.locator('div.card:has(h2:text-is("Modules")) tbody tr');
  modules = await rows.evaluateAll((trs) =>
    trs.map((tr) => {
      const cells = [...tr.querySelectorAll('td')].map((td) => td.innerText.trim());
      return { module: cells[0], cost: cells[1], share: cells[2] };
    }));
  const bars = await page.locator('svg rect[class^="series-"]').count();
  if (bars === 0) problems.push('the cost chart has no bar');
  await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(JSON.stringify({ modules }));
