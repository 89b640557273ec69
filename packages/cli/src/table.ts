// Plain-text tables for the terminal: a header row, columns padded to their widest cell.

// C0 and C1 controls, DEL, and the Unicode line separators and bidirectional overrides that reorder what a
// terminal shows: anything that could move the cursor, recolour, or forge a row or hide text
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' }

/**
 * Text from etcd made safe for a terminal: every control character shown as an escape (`\n`, `\e`,
 * `\x07`, `\u202e`), so a value can neither send escape sequences nor break a line into a forged row.
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0)
    return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`)
  })
}

/** Renders `rows` under `headers`; every cell is shown through `printable()`. An empty table says so. */
export function table(
  headers: readonly string[],
  rawRows: readonly (readonly string[])[],
  empty = '(none)',
): string {
  if (rawRows.length === 0) return `${empty}\n`
  const rows = rawRows.map((r) => r.map(printable))
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
