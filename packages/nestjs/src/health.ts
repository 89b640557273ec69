// A health indicator for @nestjs/terminus, written against Terminus's result shape only (no import of it).
import type { EtcdKit, SessionState } from '@etcdkit/core'
import type { EtcdKitExplorer } from './explorer.js'
import type { EtcdKitLifecycle } from './lifecycle.js'

/** What the indicator reports under its key. */
export interface EtcdKitHealthDetails {
  status: 'up' | 'down'
  /** The session lease's state. */
  session: SessionState
  /** `written`, `pending` (listening, not written yet, or rewritten after a lost lease), or `none`. */
  registration: 'written' | 'pending' | 'none'
  /** Whether the `@Config` values of the bound providers have been read from etcd. */
  config: 'loaded' | 'loading'
}

/** Terminus's `HealthIndicatorResult` shape: `{ [key]: { status, ...details } }`. */
export type EtcdKitHealthResult = Record<string, EtcdKitHealthDetails>

/**
 * `health.check([() => etcdHealth.isHealthy('etcd')])` in a Terminus `HealthCheckService`: down while the
 * session is lost or closed, while the registration (if the module registers the app) is not written, or
 * while the `@Config` values are not read yet. Terminus reports a `down` result as an error (HTTP 503).
 */
export class EtcdKitHealthIndicator {
  constructor(
    private readonly kit: EtcdKit,
    private readonly lifecycle: EtcdKitLifecycle,
    private readonly explorer: EtcdKitExplorer,
  ) {}

  isHealthy(key = 'etcd'): Promise<EtcdKitHealthResult> {
    const session = this.kit.session.state
    const registration = this.lifecycle.registration
    const written = registration?.registration !== undefined && (session === 'alive' || session === 'suspect')
    const details: Omit<EtcdKitHealthDetails, 'status'> = {
      session,
      registration: registration === undefined ? 'none' : written ? 'written' : 'pending',
      config: this.explorer.configLoaded ? 'loaded' : 'loading',
    }
    const up =
      session !== 'lost' &&
      session !== 'closed' &&
      details.registration !== 'pending' &&
      details.config === 'loaded'
    return Promise.resolve({ [key]: { status: up ? 'up' : 'down', ...details } })
  }
}
