export type { AuditEntry } from './actions.js'
export { type ConsoleOptions, type RunningConsole, startConsole } from './console.js'
export type { ConfigEntry, Contender, Owner, Queue, ServiceInstanceRow, SessionRecord } from './inspect.js'
export { type Io, run, USAGE } from './main.js'
