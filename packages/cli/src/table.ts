// Plain-text tables for the terminal: a header row, columns padded to their widest cell.

/** Renders `rows` under `headers`; every cell is text already. An empty table says so. */
export function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  empty = '(none)',
): string {
  if (rows.length === 0) return `${empty}\n`
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`
}

/** A duration in seconds as `42s`, `3m20s`, `2h05m`. */
export function seconds(s: number | undefined): string {
  if (s === undefined) return '?'
  if (s < 0) return 'expired'
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** A process as `service@address (host pid 123)`, or `unknown`. */
export function processLabel(
  p: { service?: string | null; address?: string | null; hostname?: string; pid?: number } | 'unknown',
): string {
  if (p === 'unknown') return 'unknown'
  const who = [p.service, p.address].filter(Boolean).join('@')
  const where = [p.hostname, p.pid === undefined ? undefined : `pid ${p.pid}`].filter(Boolean).join(' ')
  return [who, where && `(${where})`].filter(Boolean).join(' ') || 'unknown'
}
