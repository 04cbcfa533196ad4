// `notify-gateway rules manifest FILE|DIR`: the printed trigger modules,
// pasted into a manifest (remote, endpoint, and the scopes Atlassian's own
// event-to-scope mapping asks for), pass @forge/manifest's full validation and
// its product-trigger scope check; expressions Forge can evaluate become
// filters, the others are named gateway-side only with the reason; globs are
// expanded; covered events are not delivered twice; disabled and scheduled
// rules get no product trigger; bad input exits non-zero. (No browser: the
// test lives here because @forge/manifest is a dependency of tests/browser.)
// The validator output is appended to $GW_MANIFEST_REPORT when set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ProcessorBuilder, ValidationTypes } from '@forge/manifest';
import { BINARY, SOURCE_DIR, fixture } from './lib/harness.mjs';

const run = promisify(execFile);
// Atlassian's event -> scope mapping, shipped in @forge/manifest (not in its exports map: read beside its main file).
const require = createRequire(import.meta.url);
const SCOPE_MAP = JSON.parse(readFileSync(path.join(path.dirname(require.resolve('@forge/manifest')), 'mapping/product-event-to-scope-mapping.json'), 'utf8')).mapping;

async function manifestFor(...paths) {
  const { stdout, stderr } = await run(BINARY, ['rules', 'manifest', ...paths], { timeout: 15000 });
  return { stdout, stderr };
}

/** The printed modules inside a complete app manifest; validated by @forge/manifest (full + product-trigger scopes). */
async function validateWith(printed, name) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ngw-rules-manifest-'));
  try {
    const events = [...printed.matchAll(/^ {8}- (avi:[^\s#]+)/gm)].map((m) => m[1]);
    const scopes = new Set(['read:app-system-token']);
    for (const e of events) for (const s of SCOPE_MAP.find((m) => m.productEvent === e)?.oAuthScopes.current || []) scopes.add(s);
    const yaml = [
      'app:',
      '  id: ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000',
      '  runtime:',
      '    name: nodejs22.x',
      printed.trimEnd(),
      '  endpoint:',
      '    - key: notify-events',
      '      remote: notify-gateway',
      '      route:',
      '        path: /forge/events',
      '      auth:',
      '        appSystemToken:',
      '          enabled: true',
      'remotes:',
      '  - key: notify-gateway',
      '    baseUrl: https://notify.example.com',
      '    operations:',
      '      - compute',
      'permissions:',
      '  scopes:',
      ...[...scopes].map((s) => `    - ${s}`),
      '',
    ].join('\n');
    const file = path.join(dir, 'manifest.yml');
    writeFileSync(file, yaml);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const full = await ProcessorBuilder.instance().withValidation(ValidationTypes.FULL).build().process(file);
      const trig = await ProcessorBuilder.instance().withValidation(ValidationTypes.PRODUCT_TRIGGER).build().process(file);
      const out = { full: { success: full.success, errors: full.errors || [] }, productTriggerScopes: { success: trig.success, errors: trig.errors || [] } };
      console.log(`@forge/manifest on the output of 'rules manifest ${name}': ${JSON.stringify(out)}`);
      if (process.env.GW_MANIFEST_REPORT) appendFileSync(process.env.GW_MANIFEST_REPORT, `\nrules manifest ${name}: ${JSON.stringify(out, null, 2)}\n`);
      return { ...out, yaml, events };
    } finally {
      process.chdir(cwd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the embedded default rules: valid trigger modules, gateway-only expressions named', async () => {
  const { stdout } = await manifestFor(path.join(SOURCE_DIR, 'docs/examples/default.yml'));
  const v = await validateWith(stdout, 'docs/examples/default.yml');
  assert.deepEqual(v.full.errors, []);
  assert.equal(v.full.success, true);
  assert.equal(v.productTriggerScopes.success, true, JSON.stringify(v.productTriggerScopes.errors));
  assert.match(stdout, /gateway-side only: the expression uses changed\(\), a gateway helper Forge does not have/);
  // issue-created (no filter) already delivers every created issue: bug-created's trigger carries it, not both.
  assert.equal([...stdout.matchAll(/- avi:jira:created:issue/g)].length, 1);
});

test('filters Forge can evaluate are kept; the others stay gateway-side with the reason; globs expanded', async () => {
  const { stdout } = await manifestFor(fixture('manifest-rules.yml'));
  const v = await validateWith(stdout, 'fixtures/manifest-rules.yml');
  assert.deepEqual(v.full.errors, []);
  assert.equal(v.full.success, true);
  assert.equal(v.productTriggerScopes.success, true, JSON.stringify(v.productTriggerScopes.errors));
  // Forge-evaluable: the expression, ignoreSelf and onError as written.
  assert.match(stdout, /key: notify-bugs-assigned[\s\S]*?ignoreSelf: true\n {8}expression: "event\.issue\.fields\?\.issuetype\?\.name == 'Bug' && event\.issue\.fields\?\.assignee != null"\n {8}onError: RECEIVE_AND_LOG/);
  assert.match(stdout, /key: notify-high-priority[\s\S]*?expression: "\['High', 'Highest'\]\.includes\(event\.issue\.fields\?\.priority\?\.name\)"/);
  // Gateway-only, each with its reason; ignoreSelf still applied by Forge.
  assert.match(stdout, /key: notify-done[\s\S]*?ignoreSelf: true\n {6}# gateway-side only: the expression uses changedTo\(\)/);
  assert.match(stdout, /key: notify-hotfix-branch[\s\S]*?# gateway-side only: the expression uses `matches` \(a PCRE2 regex\)/);
  assert.doesNotMatch(stdout, /expression: "changedTo|matches '/);
  // The glob became exact names from the catalogue.
  assert.ok(v.events.includes('avi:confluence:created:page') && v.events.includes('avi:confluence:updated:page'));
  assert.ok(!v.events.some((e) => e.includes('*')));
  // bugs.assigned's updated events already come through notify-done (ignoreSelf, no expression).
  assert.match(stdout, /# avi:jira:updated:issue: already delivered by notify-done/);
  assert.match(stdout, /# rule old: disabled, no trigger/);
  assert.match(stdout, /# rule hourly: scheduled \(hour\)/);
  assert.match(stdout, /# 5 triggers; 2 rules filtered by Forge; 2 expressions kept gateway-side only\./);
});

test('bad input: invalid rules exit 1 with the diagnostics; usage errors exit 2', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ngw-rules-bad-'));
  try {
    const bad = path.join(dir, 'bad.yml');
    writeFileSync(bad, 'rules:\n  - key: x\n    events: [avi:jira:created:issue]\n    filter:\n      expression: "event.issue =="\n');
    await assert.rejects(run(BINARY, ['rules', 'manifest', bad], { timeout: 15000 }), (e) => e.code === 1 && /bad\.yml:5:/.test(e.stderr));
    await assert.rejects(run(BINARY, ['rules', 'manifest'], { timeout: 15000 }), (e) => e.code === 2 && /usage/.test(e.stderr));
    await assert.rejects(run(BINARY, ['rules', 'manifest', '--nope', bad], { timeout: 15000 }), (e) => e.code === 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
