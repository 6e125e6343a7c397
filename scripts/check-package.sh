#!/usr/bin/env bash
# The package as a user gets it: `npm pack`, then the tarball installed into empty projects with a
# PATH that holds only node, npm, npx and sh (no compiler, CMake, make or Python):
#   1. with --ignore-scripts: `npx decoflow info` (the prebuilt addon), require() and import(), a
#      TypeScript file compiled with `tsc --strict` against the package's types (tsc from this
#      repository, run by absolute path: the project itself has only the tarball and @types/node),
#      20 training steps and a sample grid through that file and through the CLI;
#   2. with install scripts allowed: the install script finds the prebuild and builds nothing;
#   3. (full PATH) `npm rebuild decoflow --build-from-source` builds from the packed sources.
# Needs the prebuilt addon in prebuilds/ (npm run prebuildify) and dist/ (tsup). Run from the repo root.
#   bash scripts/check-package.sh [--no-source-build]
set -euo pipefail
repo=$PWD
work=$(mktemp -d /tmp/decoflow-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
say() { echo "check-package: $*"; }

ls prebuilds/*/*.node > /dev/null || { say "no prebuilt addon in prebuilds/ (npm run prebuildify)"; exit 1; }
tarball=$(npm pack --silent --pack-destination "$work" | tail -1)
tarball="$work/$tarball"
tar -tzf "$tarball" > "$work/files"
say "$(basename "$tarball"): $(du -k "$tarball" | cut -f1) KiB packed, $(wc -l < "$work/files") files"
grep -q 'package/prebuilds/linux-x64/.*\.node$' "$work/files" || { say "the tarball has no prebuilt addon"; exit 1; }
# The two PyTorch references that `decoflow bench --compare torch` runs as its peer ship; no other test file.
if grep -E 'package/(build|test|bench|node_modules)/' "$work/files" | grep -vE '^package/test/reference/(dit|eval)_reference\.py$'; then
  say "the tarball holds build or test files"
  exit 1
fi

# A PATH with node, npm and npx only (and sh, with which npm runs scripts and npx its commands).
mkdir -p "$work/bin"
for tool in node npm npx sh; do ln -s "$(command -v $tool)" "$work/bin/$tool"; done
bare="$work/bin"
for tool in cc gcc g++ c++ cmake make python3 python ninja nvcc; do
  if PATH=$bare command -v $tool > /dev/null; then say "$tool is on the bare PATH"; exit 1; fi
done

consumer() {  # consumer DIR PACKAGE-JSON-EXTRA [npm install options]: an empty project with the tarball installed
  local dir=$1 extra=$2
  shift 2
  mkdir -p "$dir"
  echo "{ \"name\": \"consumer\", \"version\": \"1.0.0\", \"private\": true $extra }" > "$dir/package.json"
  (cd "$dir" && PATH=$bare npm install --no-audit --no-fund --loglevel=error "$@" "$tarball")
}

# ---- 1. --ignore-scripts ----
app="$work/app"
consumer "$app" "" --ignore-scripts
cd "$app"
PATH=$bare npm install --no-audit --no-fund --loglevel=error --ignore-scripts --save-dev @types/node@20
[ ! -e node_modules/decoflow/build ] || { say "a build/ folder appeared without install scripts"; exit 1; }
info=$(PATH=$bare npx decoflow info)
echo "$info"
grep -q '^addon: prebuilt ' <<< "$info" || { say "npx decoflow info: not the prebuilt addon"; exit 1; }
grep -q '^CPU kernels: \(baseline\|avx2\|avx512\) ' <<< "$info" || { say "npx decoflow info: no CPU level"; exit 1; }
PATH=$bare node -e "
const d = require('decoflow');
const y = d.matmulSync(d.Tensor.randn([3, 4]), d.Tensor.randn([4, 2]));
if (y.shape.join() !== '3,2' || !d.info().prebuilt) process.exit(1);
console.log('require: ok,', d.info().cpuLevelDetail);"
PATH=$bare node --input-type=module -e "
const d = await import('decoflow');
const { Tensor, info } = d;
if (Tensor.zeros([2, 2]).shape.join() !== '2,2' || !info().prebuilt) process.exit(1);
console.log('import: ok, node', process.version);"

cat > main.ts <<'EOF'
import { BatchLoader, Model, Trainer, info, modelConfig, shapesDataset, writeSampleGrid } from 'decoflow';
import type { Info, ModelConfig, TrainStepStats } from 'decoflow';

async function main(): Promise<void> {
  const i: Info = info();
  const config: ModelConfig = modelConfig({ size: 'tiny', stages: 2, channels: 3, imageSize: 32, numClasses: 8 });
  const model = Model.create(config, { maxBatch: 8, seed: 0, optimizer: { lr: 2e-3, warmupSteps: 5 } });
  const trainer = new Trainer(model, { stageProbs: [0.5, 0.5] });
  const loader = new BatchLoader(shapesDataset(), 8, 0);
  const losses: number[] = [];
  for (let step = 0; step < 20; step++) {
    const batch = await loader.next();
    const s: TrainStepStats = await trainer.step(batch);
    losses.push(s.loss);
    batch.images.dispose();
    batch.labels.dispose();
  }
  if (!losses.every(Number.isFinite)) throw new Error(`non-finite loss: ${losses.join(', ')}`);
  await writeSampleGrid(model, 'grid.png', { columns: 4, rows: 2, stepsPerStage: [6, 3], seed: 1 });
  console.log(`typescript: 20 steps on ${i.cpuLevel} (loss ${losses[0].toFixed(3)} -> ${losses[19].toFixed(3)}), grid.png written`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
EOF
echo '{ "compilerOptions": { "strict": true, "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022", "outDir": "out", "types": ["node"] }, "files": ["main.ts"] }' > tsconfig.json
PATH=$bare node "$repo/node_modules/typescript/bin/tsc" -p tsconfig.json
PATH=$bare node out/main.js
[ -s grid.png ] || { say "no grid.png"; exit 1; }
PATH=$bare npx decoflow train --data shapes --stages 2 --model tiny --batch 8 --steps 20 --checkpoint-every 0 \
  --sample-every 0 --out run 2> train.log || { cat train.log; exit 1; }
tail -2 train.log
[ -s run/samples.png ] || { say "the CLI wrote no samples.png"; exit 1; }

# ---- 2. install scripts allowed ----
cd "$repo"
allowed="$work/allowed"
# (npm 11 runs a dependency's install scripts only when the project allows them)
consumer "$allowed" ', "allowScripts": { "decoflow": true }' --foreground-scripts 2>&1 | tee "$work/allowed.log" || true
grep -q 'decoflow: using the prebuilt addon' "$work/allowed.log" || { say "the install script did not run or did not find the prebuild"; exit 1; }
[ -d "$allowed/node_modules/decoflow" ] || { say "the install with scripts failed"; exit 1; }
[ ! -e "$allowed/node_modules/decoflow/build" ] || { say "the install script built from source although a prebuild fits"; exit 1; }
(cd "$allowed" && PATH=$bare npx decoflow info | head -3)

# ---- 3. from source, from the packed sources ----
if [ "${1:-}" != "--no-source-build" ]; then
  cd "$allowed"
  npm install --no-audit --no-fund --loglevel=error --no-save --ignore-scripts node-addon-api@8
  JOBS=2 npm rebuild decoflow --build-from-source --foreground-scripts > "$work/rebuild.log" 2>&1 ||
    { tail -30 "$work/rebuild.log"; exit 1; }
  grep 'decoflow: native build done' "$work/rebuild.log"
  from_source=$(PATH=$bare npx decoflow info | sed -n 2p)
  echo "$from_source"
  grep -q '^addon: built from source' <<< "$from_source" || { say "npm rebuild did not give a build from source"; exit 1; }
  PATH=$bare node -e "const d = require('decoflow'); d.attentionSync(d.Tensor.randn([1, 2, 8, 16]), d.Tensor.randn([1, 2, 8, 16]), d.Tensor.randn([1, 2, 8, 16]))"
fi
say "ok"
