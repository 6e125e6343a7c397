// The `decoflow` command line. Exit codes: 0 ok, 1 failure at run time, 2 bad usage.
import { UsageError } from './cli/args';
import { benchCommand } from './cli/bench';
import { emaCommand } from './cli/ema';
import { evalCommand } from './cli/eval';
import { experimentCommand } from './cli/experiment';
import { sample } from './cli/sample';
import { train } from './cli/train';
import { info } from './runtime';

const USAGE = `usage: decoflow <command> [options]

commands:
  train       train a DFM model (or plain flow matching with --stages 1)
  sample      generate images from a checkpoint
  eval        compare generated images with real ones (SWD, Frechet distances, precision/recall)
  ema         post-hoc EMA: checkpoints of other EMA lengths from a run's EMA snapshots
  experiment  train FM and DFM at equal compute and plot quality against training FLOPs
  bench       time the kernels and the model against the machine's ceilings (and PyTorch)
  info        version, addon, CPU kernels, backends, BLAS and threads
  help        this text

'decoflow <command> --help' lists a command's options.
`;

function printInfo(): void {
  const i = info();
  console.log(`decoflow ${i.version} (node ${i.node})`);
  console.log(`addon: ${i.prebuilt ? 'prebuilt' : 'built from source'}${i.nativeArch ? ' for this CPU' : ''} (${i.addon})`);
  console.log(`CPU kernels: ${i.cpuLevelDetail}`);
  console.log(`threads: ${i.threads} of ${i.hardwareThreads} hardware threads`);
  console.log(`BLAS: ${i.blas} (gemm: ${i.gemm})`);
  console.log('backends:');
  for (const b of i.backends) {
    const state = b.available ? `available, ${b.devices} device(s)${b.detail ? `: ${b.detail}` : ''}` : `unavailable: ${b.reason}`;
    console.log(`  ${b.name.padEnd(5)} ${state}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'info':
        printInfo();
        return 0;
      case 'train':
        return await train(rest);
      case 'sample':
        return await sample(rest);
      case 'eval':
        return await evalCommand(rest);
      case 'ema':
        return await emaCommand(rest);
      case 'experiment':
        return await experimentCommand(rest);
      case 'bench':
        return await benchCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`decoflow: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
