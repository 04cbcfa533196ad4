// screenshot.mjs - regenerates docs/img/web-demo-flags.png (not a test):
//   cd tests/browser && GW_BINARY=../../build/gateway/notify-gateway node screenshot.mjs
import path from 'node:path';
import { Gateway, launchBrowser, openDemo, SOURCE_DIR } from './lib/harness.mjs';

const gw = await Gateway.start();
const browser = await launchBrowser();
try {
  const page = await openDemo(browser.context, gw.url, { user: 'alice', issue: 'SP-10' });
  for (const name of ['App installed', 'Bug created', 'Status changed']) {
    await page.getByRole('button', { name }).click();
    await page.waitForTimeout(300);
  }
  await page.waitForFunction(() => window.notifyDemo.shown.length >= 4, null, { timeout: 5000 });
  await page.waitForTimeout(400); // let the slide-in animation end
  const out = path.join(SOURCE_DIR, 'docs/img/web-demo-flags.png');
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await gw.stop();
}
