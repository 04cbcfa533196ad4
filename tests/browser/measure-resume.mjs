// measure-resume.mjs - not a test: how long the demo page takes, coming back after missing N
// notifications, to replay and verify them all (from the navigation; chromium, real gateway).
//   cd tests/browser && GW_BINARY=../../build/gateway/notify-gateway node measure-resume.mjs [N=300]
import { Gateway, launchBrowser, openDemo, fireEvent, issueCreated, waitOpen } from './lib/harness.mjs';
const N = Number(process.argv[2] || 300);
const gw = await Gateway.start();
const b = await launchBrowser();
try {
  const page = await openDemo(b.context, gw.url, { user: 'measure' });
  const url = page.url();
  await page.goto('about:blank');
  for (let i = 0; i < N; i++) await fireEvent(gw.port, issueCreated({ assignee: 'measure', summary: `M${i}` }));
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  await waitOpen(page);
  await page.waitForFunction((n) => window.notifyDemo.stats().replayed === n, N, { timeout: 120000, polling: 20 });
  const ms = Date.now() - t0;
  const st = await page.evaluate(() => window.notifyDemo.stats());
  console.log(JSON.stringify({ N, ms_from_navigation_to_all_replayed: ms, replayed: st.replayed, flagged: st.replayedFlagged, quiet: st.replayedQuiet, unread: st.unread, duplicates: st.duplicates }));
} finally {
  await b.close();
  await gw.stop();
}
