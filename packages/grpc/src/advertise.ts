import { networkInterfaces } from 'node:os'

/**
 * The address other hosts reach this one at: its first non-internal IPv4 address (interfaces in the order
 * the OS lists them), else 127.0.0.1 on a host with no network.
 */
export function hostAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return '127.0.0.1'
}
