// The decoflow command line of this working tree for tests that run it as a child process (to kill
// it, for instance): lib/ transpiled with TypeScript's transpileModule into build/ (no bundler, so it
// is always the current source), plus an entry like bin/decoflow.js.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..', '..');

function transpileDir(src: string, dst: string): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, e.name);
    if (e.isDirectory()) transpileDir(from, path.join(dst, e.name));
    else if (e.name.endsWith('.ts')) {
      const out = ts.transpileModule(fs.readFileSync(from, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: from,
      });
      fs.writeFileSync(path.join(dst, e.name.replace(/\.ts$/, '.js')), out.outputText);
    }
  }
}

let entry: string | undefined;

/** The path of a script that runs `decoflow` (argv after it), built once per test process. */
export function cliEntry(): string {
  if (entry) return entry;
  const dir = path.join(ROOT, 'build', `ts-cli-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  transpileDir(path.join(ROOT, 'lib'), path.join(dir, 'lib'));
  entry = path.join(dir, 'decoflow.js');
  fs.writeFileSync(
    entry,
    `'use strict';
const { main } = require('./lib/cli.js');
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error('decoflow: ' + (err && err.message) + (err && err.code ? ' (' + err.code + ')' : '')); process.exitCode = 1; },
);
`,
  );
  return entry;
}

/** lib/index of the same transpiled tree: the package as a child process loads it. */
export function libEntry(): string {
  return path.join(path.dirname(cliEntry()), 'lib', 'index.js');
}

/** Removes what cliEntry built. */
export function removeCli(): void {
  if (entry) fs.rmSync(path.dirname(entry), { recursive: true, force: true });
  entry = undefined;
}
