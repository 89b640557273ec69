// Nest apps for the tests: either HTTP adapter, the module under test, the providers and controllers given.
import 'reflect-metadata'
import type { EtcdKit } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import {
  type DynamicModule,
  type INestApplication,
  type LoggerService,
  Module,
  type Type,
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import { EtcdKitModule, type EtcdKitModuleRootOptions } from '../src/index.js'

export const etcd = sharedEtcd
export { eventually } from '@etcdkit/testing'

export type AdapterKind = 'express' | 'fastify'
export const adapters: AdapterKind[] = ['express', 'fastify']

/** A logger that keeps what Nest (and the kit, through Nest's Logger) writes. */
export class MemoryLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string }> = []
  log(message: unknown) {
    this.lines.push({ level: 'log', message: String(message) })
  }
  warn(message: unknown) {
    this.lines.push({ level: 'warn', message: String(message) })
  }
  error(message: unknown) {
    this.lines.push({ level: 'error', message: String(message) })
  }
  debug(message: unknown) {
    this.lines.push({ level: 'debug', message: String(message) })
  }
  verbose() {}
}

export interface AppSpec {
  adapter: AdapterKind
  etcd: EtcdKitModuleRootOptions
  providers?: Type[]
  controllers?: Type[]
  imports?: Array<Type | DynamicModule>
  logger?: LoggerService | false
}

export function appModule(spec: Pick<AppSpec, 'etcd' | 'providers' | 'controllers' | 'imports'>) {
  @Module({
    imports: [EtcdKitModule.forRoot(spec.etcd), ...(spec.imports ?? [])],
    providers: spec.providers ?? [],
    controllers: spec.controllers ?? [],
  })
  class AppModule {}
  return AppModule
}

/** Creates (not yet listening) a Nest app on `spec.adapter`. */
export function createApp(spec: AppSpec): Promise<INestApplication> {
  const adapter = spec.adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter()
  return NestFactory.create(appModule(spec), adapter, {
    logger: spec.logger ?? false,
    abortOnError: false,
  })
}

/** The etcd options of one test: its own namespace, the shared etcd. */
export async function etcdOptions(label: string) {
  const { endpoints } = await etcd()
  return { endpoints, namespace: uniquePrefix(label) }
}

export type { EtcdKit }
