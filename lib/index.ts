// decoflow: Decomposable Flow Matching for Node.js.
export { Tensor } from './tensor';
export type { DType, Device, TypedArray, TensorOptions } from './tensor';
export { backends, info, setThreads, getThreads, memory, resetPeakMemory } from './runtime';
export type { Backend, Info, DeviceMemory } from './runtime';
export { matmul, matmulSync, setGemm, getGemm } from './gemm';
export type { MatmulOptions } from './gemm';
export { decoflowError } from './errors';
export type { DecoflowError, ErrorCode } from './errors';
export { shapesDataset, tensorDataset, fashionMnist, imageFolder, loadDataset, BatchLoader, FASHION_MNIST_DIR } from './data';
export type { Batch, Dataset } from './data';
export { grid, saveGrid, saveImages, readImage, toPixels, writeFileAtomic } from './image';
export type { GridOptions } from './image';
export { pyramid } from './pyramid';
export type { PyramidKind, PyramidOptions, DecomposeOptions, RecomposeOptions } from './pyramid';
export { benchCopy } from './runtime';
