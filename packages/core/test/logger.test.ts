// The logger shapes apps already have are accepted: pino-likes as they are, NestJS's and console's
// message-first loggers through an adapter; anything else is refused with what is missing.
import test from 'ava'
import { EtcdKit } from '../src/index.js'
import { toLogger } from '../src/ops/logger.js'

test("a NestJS LoggerService (log, no info) is accepted, and the kit's entries reach it", async (t) => {
  const calls: [string, unknown[]][] = []
  class NestLikeLogger {
    log(message: unknown, ...rest: unknown[]) {
      calls.push(['log', [message, ...rest]])
    }
    warn(message: unknown, ...rest: unknown[]) {
      calls.push(['warn', [message, ...rest]])
    }
    error(message: unknown, ...rest: unknown[]) {
      calls.push(['error', [message, ...rest]])
    }
    verbose(message: unknown, ...rest: unknown[]) {
      calls.push(['verbose', [message, ...rest]])
    }
  }
  const kit = new EtcdKit({ endpoints: ['127.0.0.1:1'], logger: new NestLikeLogger() })
  t.teardown(() => kit.close())
  kit.logger.info({ key: 'a' }, 'registered')
  kit.logger.warn({ err: new Error('gone') }, 'lease lost')
  kit.logger.debug({}, 'detail')
  t.deepEqual(calls, [
    ['log', ['registered {"key":"a"}']],
    ['warn', ['lease lost {"err":{"message":"gone"}}']],
    ['verbose', ['detail']],
  ])
})

test('a pino-like logger is used as it is; console is accepted', (t) => {
  const pinoLike = { debug() {}, info() {}, warn() {}, error() {} }
  t.is(toLogger(pinoLike), pinoLike)
  const logger = toLogger(console)
  t.is(typeof logger.warn, 'function')
})

test('a logger missing warn, error, or both info and log is refused, naming what is missing', (t) => {
  t.throws(() => toLogger({ log() {}, warn() {} }), {
    code: 'ETCDKIT_INVALID_ARGUMENT',
    message: 'invalid logger: it has no error() method',
  })
  t.throws(() => toLogger({ warn() {}, error() {} }), { message: /it has no info\(\) or log\(\) method/ })
  t.throws(() => toLogger('stderr'), { message: /invalid logger "stderr"/ })
})
