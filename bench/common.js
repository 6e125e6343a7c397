// The bench/ scripts are thin callers of `decoflow bench` (lib/cli/bench.ts, the one harness): each
// names its default rows and passes its own command line through (options, and more rows), e.g.
//   node bench/attention.js --threads 1 --rounds 3 --json out.json
//   node bench/gemm.js gemm:2048          (gemm:1024, then 2048^3)
// Every row runs against PyTorch 2.x in the same run (--compare torch): the Python of
// DECOFLOW_TORCH_PYTHON, else /opt/torch-venv/bin/python (made by ../shared/tools/torch-venv.sh) when
// it exists, else python3 on the PATH; without PyTorch the rows run alone and say so.
'use strict';
const fs = require('fs');
const path = require('path');

const VENV_PYTHON = '/opt/torch-venv/bin/python';

/** Runs `decoflow bench ROWS --compare torch DEFAULTS ARGV` from the built package and exits with its code. */
function runBench(rows, { defaults = [], argv = process.argv.slice(2) } = {}) {
  const { main } = require(path.join(__dirname, '..', 'dist', 'cli.cjs'));
  const python = process.env.DECOFLOW_TORCH_PYTHON || (fs.existsSync(VENV_PYTHON) ? VENV_PYTHON : null);
  const args = ['bench', ...rows, '--compare', 'torch', ...(python ? ['--python', python] : []), ...defaults, ...argv];
  main(args).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

module.exports = { runBench };
