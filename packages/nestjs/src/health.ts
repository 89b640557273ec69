// A health indicator for @nestjs/terminus on kit.health(), written against Terminus's result shape only (no
// import of it).
import type { EtcdKit, RegistrationHealth, SessionState } from '@etcdkit/core'
import type { EtcdKitExplorer } from './explorer.js'
import type { EtcdKitLifecycle } from './lifecycle.js'

/** What the indicator reports under its key. */
export interface EtcdKitHealthDetails {
  status: 'up' | 'down'
  /** Why it is down, one short sentence each (`kit.health()`'s reasons, and the module's own); empty when up. */
  reasons: string[]
  /** The session lease's state. */
  session: SessionState
  /**
   * This app's registration (when the module registers it): its state in `kit.health()` (`written` on the
   * current lease, `pending`, `failing`), `draining` once shutdown has deregistered it, `none` when the module
   * does not register or the app does not listen yet.
   */
  registration: RegistrationHealth['state'] | 'draining' | 'none'
  /** The kit's live views of etcd (discovery views, config values): how many are known current, how many not. */
  views: { current: number; stale: number }
  /** Whether the `@Config` values of the bound providers have been read from etcd. */
  config: 'loaded' | 'loading'
}

/** Terminus's `HealthIndicatorResult` shape: `{ [key]: { status, ...details } }`. */
export type EtcdKitHealthResult = Record<string, EtcdKitHealthDetails>

/**
 * `health.check([() => etcdHealth.isHealthy('etcd')])` in a Terminus `HealthCheckService`: up when
 * `kit.health()` says ready (the session alive if started, every registration written on the current lease,
 * every view of etcd current) and the `@Config` values are read; down while any of that is not so, and from
 * the moment shutdown deregisters the app (it is draining and should get no new traffic). Terminus reports a
 * `down` result as an error (HTTP 503).
 */
export class EtcdKitHealthIndicator {
  constructor(
    private readonly kit: EtcdKit,
    private readonly lifecycle: EtcdKitLifecycle,
    private readonly explorer: EtcdKitExplorer,
  ) {}

  isHealthy(key = 'etcd'): Promise<EtcdKitHealthResult> {
    const snapshot = this.kit.health()
    const reasons = [...snapshot.reasons]
    const own = this.lifecycle.registration
    let registration: EtcdKitHealthDetails['registration'] = 'none'
    if (own && this.lifecycle.draining) {
      registration = 'draining'
      reasons.unshift('deregistered: the server is closing')
    } else if (own?.address !== undefined) {
      const entry = snapshot.registrations.find((r) => r.service === own.service && r.address === own.address)
      registration = entry?.state ?? 'pending'
      if (entry === undefined) reasons.push(`registration ${own.service}/${own.address} is not written yet`)
    }
    const config = this.explorer.configLoaded ? 'loaded' : 'loading'
    if (config === 'loading') reasons.push('the @Config values are not read from etcd yet')
    const current = snapshot.views.filter((v) => v.current).length
    return Promise.resolve({
      [key]: {
        status: reasons.length === 0 ? 'up' : 'down',
        reasons,
        session: snapshot.session.state,
        registration,
        views: { current, stale: snapshot.views.length - current },
        config,
      },
    })
  }
}
