// The CLI's two kinds of failure: bad usage (exit 2) and everything else (exit 1).

/** A bad flag, command or argument: printed with a hint to `--help`, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}
