// The web demo is found without configuration by a binary installed as
// ${prefix}/bin/notify-gateway with its files in ${prefix}/share/notify-gateway/web-demo
// (the layout of `cmake --install`), not only in the source tree it was built from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync, rmSync, copyFileSync, chmodSync } from 'node:fs';
import path from 'node:path';

import { BINARY, SOURCE_DIR, Gateway, tempDir } from './lib/gateway.mjs';
import { request } from './lib/http.mjs';

test('an installed binary serves ${prefix}/share/notify-gateway/web-demo at /', async () => {
  const prefix = tempDir('ngw-prefix-');
  try {
    mkdirSync(path.join(prefix, 'bin'));
    const bin = path.join(prefix, 'bin', 'notify-gateway');
    copyFileSync(BINARY, bin);
    chmodSync(bin, 0o755);
    const web = path.join(prefix, 'share', 'notify-gateway', 'web-demo');
    cpSync(path.join(SOURCE_DIR, 'web-demo'), web, { recursive: true });
    writeFileSync(path.join(web, 'installed-marker.txt'), 'from the installed tree\n');
    const child = spawn(bin, ['--listen', '127.0.0.1:0', '--state-dir', path.join(prefix, 'state')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const gw = new Gateway(child, { stateDir: path.join(prefix, 'state'), args: [], ownsStateDir: false });
    try {
      await gw.waitListening(15000);
      const marker = await request(gw.port, { path: '/installed-marker.txt' });
      assert.equal(marker.status, 200, gw.stderr);
      assert.equal(marker.text, 'from the installed tree\n');
      const index = await request(gw.port, { path: '/' });
      assert.equal(index.status, 200);
      assert.match(index.text, /notify-gateway demo/);
    } finally {
      await gw.stop();
    }
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
});
