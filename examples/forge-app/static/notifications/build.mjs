// build.mjs - bundles src/ (with @forge/bridge from npm) into build/, the
// directory manifest.yml's resource points at. Run: npm install && npm run build
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ? path.resolve(process.argv[2]) : path.join(here, 'build');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [path.join(here, 'src/main.js')],
  bundle: true,
  format: 'esm',
  target: ['chrome120', 'firefox115', 'safari16'],
  outfile: path.join(out, 'main.js'),
  logLevel: 'warning',
  ...(process.env.FORGE_BRIDGE ? { alias: { '@forge/bridge': process.env.FORGE_BRIDGE } } : {}),
});
copyFileSync(path.join(here, 'src/index.html'), path.join(out, 'index.html'));
console.log(`built ${path.relative(process.cwd(), out) || '.'}/index.html and main.js`);
