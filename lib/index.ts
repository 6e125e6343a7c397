// decoflow: Decomposable Flow Matching for Node.js.
export { Tensor } from './tensor';
export type { DType, Device, TypedArray, TensorOptions } from './tensor';
export { backends, info, setThreads, getThreads, memory, resetPeakMemory } from './runtime';
export type { Backend, Info, DeviceMemory } from './runtime';
export { matmul, matmulSync, setGemm, getGemm } from './gemm';
export type { MatmulOptions } from './gemm';
export { decoflowError } from './errors';
export type { DecoflowError, ErrorCode } from './errors';
export { pyramid } from './pyramid';
export type { PyramidKind, PyramidOptions, DecomposeOptions, RecomposeOptions } from './pyramid';
export { benchCopy } from './runtime';
