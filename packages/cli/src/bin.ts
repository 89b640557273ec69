#!/usr/bin/env node
// The `etcdkit` binary.
import { createInterface } from 'node:readline'
import { run } from './main.js'

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

const interrupted = new Promise<void>((resolve) => {
  process.once('SIGINT', resolve)
  process.once('SIGTERM', resolve)
})

process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  password,
  interrupted,
})
