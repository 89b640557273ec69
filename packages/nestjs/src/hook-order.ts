// The module's place in Nest's lifecycle order: its hooks first at startup, last at shutdown.
import type { Type } from '@nestjs/common'
import type { ModulesContainer } from '@nestjs/core'

/**
 * Nest (11 and 12, `NestApplicationContext.getModulesToTriggerHooksOn`) calls `onModuleInit` and
 * `onApplicationBootstrap` module by module in decreasing `distance` from the root module, and
 * `onModuleDestroy`, `beforeApplicationShutdown` and `onApplicationShutdown` in the reverse order. Global
 * modules share `Number.MAX_VALUE`, ordered among themselves by import order: a global module imported
 * before this one would init before the `@Config` values are read and shut down after the kit is closed.
 * An infinite distance puts this module before every other at init (so every `onModuleInit` reads etcd's
 * values) and after every other at shutdown (so every other module's hooks can still release a lock or
 * write a value through the kit). Nest reads the distances once, when it first runs hooks, after every
 * provider is built: this runs from a provider factory, before that.
 */
export function runHooksFirstAndLast(modules: ModulesContainer, module: Type): void {
  for (const ref of modules.values()) if (ref.metatype === module) ref.distance = Number.POSITIVE_INFINITY
}
