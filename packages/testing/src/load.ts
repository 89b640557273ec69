/** Counts of a load loop: every call of the work function is one request, ok or failed. */
export interface LoadStats {
  ok: number
  failed: number
  /** The failures' messages, in order. */
  errors: string[]
  /** How many requests each label (what the work function returned, e.g. the serving instance) got. */
  served: Map<string, number>
}

export interface LoadLoop {
  readonly stats: LoadStats
  /** Stops the workers after their current request and resolves when they are done. */
  stop(): Promise<LoadStats>
}

/**
 * Runs `work` in `workers` concurrent loops until `stop()`: a steady request load for rolling-restart and
 * failover tests. `work` resolves to a label (who served it) or rejects (a failed request).
 */
export function runLoad(work: () => Promise<string>, workers = 4): LoadLoop {
  const stats: LoadStats = { ok: 0, failed: 0, errors: [], served: new Map() }
  let running = true
  const worker = async () => {
    while (running) {
      try {
        const label = await work()
        stats.ok++
        stats.served.set(label, (stats.served.get(label) ?? 0) + 1)
      } catch (err) {
        stats.failed++
        stats.errors.push(err instanceof Error ? err.message : String(err))
      }
    }
  }
  const done = Promise.all(Array.from({ length: workers }, worker))
  return {
    stats,
    async stop() {
      running = false
      await done
      return stats
    },
  }
}
