import v8 from 'node:v8'

/**
 * The bytes V8's heap grew by while `fn` ran (synchronously), the least over `attempts` runs: for a hot
 * path that allocates nothing, a few KB at most (the measurement's own objects). The least, because
 * allocation per call is the same every run while noise only adds (optimized code installed by the JIT
 * mid-run, say).
 *
 * A run during which garbage was collected says nothing (the heap shrank meanwhile) and is left out;
 * the result is `undefined` when every run collected garbage, which a loop allocating per iteration
 * does. Collections are seen synchronously (v8.GCProfiler), so other work in the process cannot
 * intervene.
 */
export function heapGrowth(fn: () => void, attempts = 5): number | undefined {
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`heapGrowth: attempts must be a positive integer, got ${String(attempts)}`)
  }
  let least: number | undefined
  for (let i = 0; i < attempts; i++) {
    const profiler = new v8.GCProfiler()
    profiler.start()
    const before = v8.getHeapStatistics().used_heap_size
    fn()
    const after = v8.getHeapStatistics().used_heap_size
    if (profiler.stop().statistics.length > 0) continue
    least = Math.min(least ?? Number.POSITIVE_INFINITY, after - before)
  }
  return least
}
