#!/usr/bin/env node
// The `etcdkit` binary.
import { createInterface } from 'node:readline'

/** Reads the password from the terminal without echoing it. */
function password(user: string): Promise<string> {
  if (!process.stdin.isTTY)
    return Promise.reject(
      new Error(`the password of ${JSON.stringify(user)}: set ETCDKIT_PASSWORD (no terminal to ask on)`),
    )
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
    const output = rl as unknown as { _writeToOutput(s: string): void }
    rl.question(`password for ${user}: `, (answer) => {
      rl.close()
      process.stderr.write('\n')
      resolve(answer)
    })
    output._writeToOutput = () => {}
  })
}

// Installed before the CLI is even loaded, so a signal at any moment is acted on: the first ends the command (it
// closes what it opened), a second one ends the process at once.
let signals = 0
const interrupted = new Promise<void>((resolve) => {
  const onSignal = () => {
    if (++signals > 1) process.exit(130)
    resolve()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
})

// loaded after the handlers are in place: loading the kit and its client takes a moment
const { run } = await import('./main.js')
process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  password,
  interrupted,
})
// the command is done and its kit closed: a socket or timer left behind must not keep the process alive
setTimeout(() => process.exit(), 1_000).unref()
