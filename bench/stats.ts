// Shared by the benchmarks: percentiles and a ratio table. Medians and ratios only: the machines are
// shared and noisy, absolute figures from one run mean little.

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export interface Row {
  what: string
  /** The measured figure and its unit, e.g. 1.23 (ms). */
  value: number
  unit: string
  /** The baseline's figure, in the same unit, when the row is compared to one. */
  baseline?: number
  target?: string
}

export function printTable(title: string, rows: readonly Row[]) {
  console.log(`\n## ${title}\n`)
  console.log('| what | value | baseline | ratio | target |')
  console.log('| --- | ---: | ---: | ---: | --- |')
  for (const r of rows) {
    const fmt = (v: number) => `${v < 10 ? v.toFixed(2) : v.toFixed(0)} ${r.unit}`
    const ratio = r.baseline === undefined ? '' : `${(r.value / r.baseline).toFixed(2)}x`
    console.log(
      `| ${r.what} | ${fmt(r.value)} | ${r.baseline === undefined ? '' : fmt(r.baseline)} | ${ratio} | ${r.target ?? ''} |`,
    )
  }
}
