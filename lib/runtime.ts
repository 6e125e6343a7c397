// Backends, threads, memory accounting and build information.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CpuLevelName, NativeBackend } from '../types/native';
import { native, nativePath, root } from './native';

export type Backend = NativeBackend;

/** Every backend this build knows, whether it is usable, and if not, why. */
export function backends(): Backend[] {
  return native.backends();
}

export interface Info {
  version: string;
  node: string;
  backends: Backend[];
  blas: string;
  gemm: 'auto' | 'blas' | 'builtin';
  threads: number;
  hardwareThreads: number;
  /** Built with -march=native for the build machine (a source build), not for any x86-64. */
  nativeArch: boolean;
  /**
   * The CPU kernels in use: the best level this CPU supports, or DECOFLOW_CPU_LEVEL's (null when
   * that level cannot run here: then cpuLevelDetail says why and the kernels throw).
   */
  cpuLevel: CpuLevelName | null;
  cpuLevelDetail: string;
  /** The levels compiled into the addon, and those this CPU can run. */
  cpuLevels: CpuLevelName[];
  cpuLevelsSupported: CpuLevelName[];
  /** The addon file in use, and whether it is the package's prebuilt one (else a build from source). */
  addon: string;
  prebuilt: boolean;
}

export type { CpuLevelName };

export function info(): Info {
  const version: string = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
  const b = native.buildInfo();
  return {
    version,
    node: process.version,
    backends: backends(),
    blas: b.blas,
    gemm: native.getGemm(),
    threads: b.threads,
    hardwareThreads: b.hardwareThreads,
    nativeArch: b.nativeArch,
    cpuLevel: b.cpuLevel,
    cpuLevelDetail: b.cpuLevelDetail,
    cpuLevels: b.cpuLevels,
    cpuLevelsSupported: b.cpuLevelsSupported,
    addon: nativePath,
    prebuilt: nativePath.split(path.sep).includes('prebuilds'),
  };
}

/** Sets the number of CPU threads decoflow's kernels (BLAS calls included) use; 0 means every core. */
export function setThreads(n: number): void {
  native.setThreads(n);
}

export function getThreads(): number {
  return native.getThreads();
}

export interface DeviceMemory {
  /** Live tensor storages (views share one). */
  tensors: number;
  bytes: number;
  /** The most bytes live at once since the last resetPeakMemory(). */
  peakBytes: number;
  /** cpu: freed large blocks kept for reuse (not live; see releaseCachedMemory). */
  cachedBytes?: number;
}

/** Live tensors and bytes per device ('cpu', 'cuda:0', ...). */
export function memory(): Record<string, DeviceMemory> {
  return native.memory();
}

/** Returns the CPU blocks decoflow keeps for reuse to the system (DECOFLOW_CPU_CACHE_MB bounds them). */
export function releaseCachedMemory(): void {
  native.releaseCachedMemory();
}

export function resetPeakMemory(device: string = 'cpu'): void {
  native.resetPeakMemory(device);
}

/**
 * Median milliseconds of a multithreaded native memcpy of `bytes` bytes (`reps` runs): the
 * memory-bandwidth yardstick the benchmarks compare memory-bound kernels with.
 */
export function benchCopy(bytes: number, reps: number = 20): number {
  return native.benchCopy(bytes, reps);
}
