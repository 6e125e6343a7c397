#!/usr/bin/env node
'use strict';
const { main } = require('../dist/cli.cjs');
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    console.error(`decoflow: ${err && err.message ? err.message : err}${err && err.code ? ` (${err.code})` : ''}`);
    process.exitCode = 1;
  },
);
