// resume-bench.mjs - how long a resume of N missed notifications takes (not a
// test; docs/performance.md). Starts the gateway (sqlite store, fsync), posts
// N events to one user while a watcher confirms they are stored, then times
// `subscribe` with `since` from the frame being sent to `subscribed` arriving
// (every replayed frame received before it), several times; prints the median.
//   cd tests/blackbox && node ../../bench/resume-bench.mjs [N] [RUNS]
import { startGateway } from '../tests/blackbox/lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from '../tests/blackbox/lib/keys.mjs';
import { postEvent } from '../tests/blackbox/lib/http.mjs';
import { WsClient } from '../tests/blackbox/lib/ws.mjs';
import { bugEvent, envelope } from '../tests/blackbox/lib/events.mjs';

const N = Number(process.argv[2] || 1000);
const RUNS = Number(process.argv[3] || 7);
const keys = await makeKeys({ subscriber: 'es256' });
const gw = await startGateway({ keys, args: process.env.GW_ARGS ? process.env.GW_ARGS.split(' ') : [] });
const user = 'resume-bench-user';
async function connect(name) {
  const c = await WsClient.open(gw.wsUrl, { name });
  c.send({ op: 'connect', token: await mintSub(keys, { sub: user, ctx: ['*'] }) });
  const connected = await c.waitOp('connected');
  return { c, epoch: connected.epoch };
}
try {
  const w = await connect('watch');
  w.c.send({ op: 'subscribe', ctx: '*' });
  await w.c.waitOp('subscribed');
  const fit = await mintFit(keys);
  for (let i = 0; i < N; i += 16) {
    await Promise.all(Array.from({ length: Math.min(16, N - i) }, (_, k) =>
      postEvent(gw.port, fit, envelope(bugEvent({ key: `RB-${(i + k) % 50}`, assignee: user, summary: `r${i + k}` })))));
  }
  await w.c.waitNotifications(N, { timeout: 120000 });
  w.c.close();
  const times = [];
  for (let r = 0; r < RUNS; r++) {
    const { c, epoch } = await connect(`r${r}`);
    const t0 = process.hrtime.bigint();
    c.send({ op: 'subscribe', ctx: '*', since: { epoch, seq: 0 } });
    const sub = await c.waitOp('subscribed', { timeout: 60000 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!sub.recovered || c.notifications().length !== N) throw new Error(`resume: recovered ${sub.recovered}, ${c.notifications().length} frames`);
    times.push(ms);
    c.close();
  }
  times.sort((a, b) => a - b);
  console.log(`resume of ${N} stored notifications (sqlite): median ${times[Math.floor(times.length / 2)].toFixed(1)} ms, min ${times[0].toFixed(1)}, max ${times[times.length - 1].toFixed(1)} (${RUNS} runs; subscribe sent -> subscribed received, all frames in between)`);
} finally {
  await gw.stop();
}
