// Certificates made at test time with the openssl CLI: a CA of its own per etcd, a server certificate for
// loopback, and client certificates on demand (Node has no API to make X.509 certificates).
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { locate } from './binaries.js'

/** A PEM certificate and its private key, as text and as files (etcd and etcdctl take files). */
export interface CertificatePair {
  readonly cert: string
  readonly key: string
  readonly certFile: string
  readonly keyFile: string
}

/** A throwaway CA and what it signed; `client()` signs more client certificates. */
export interface TestCertificates {
  /** The CA's certificate (PEM): what clients trust. */
  readonly ca: string
  readonly caFile: string
  /** etcd's server certificate: `127.0.0.1`, `::1` and `localhost`; also usable as a client certificate. */
  readonly server: CertificatePair
  /** A client certificate with common name `root` (mutual TLS; etcd maps the CN to a user when auth is on). */
  readonly client: CertificatePair
  /**
   * A client certificate without a common name: with auth on, etcd's HTTP gateway refuses certificates
   * that have one ("CommonName of client sending a request against gateway will be ignored").
   */
  readonly anonymousClient: CertificatePair
  /** Signs a new client certificate for `commonName` (files `<commonName>.crt`/`.key` in the same folder). */
  issueClient(commonName: string): Promise<CertificatePair>
}

function openssl(args: readonly string[], cwd: string): Promise<void> {
  const bin = locate(
    'openssl',
    'OPENSSL_BIN',
    'install it with `apt-get install -y openssl` (Debian/Ubuntu), or set OPENSSL_BIN',
  )
  return new Promise((resolve, reject) => {
    execFile(bin, args, { cwd, timeout: 20_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args[0]} failed: ${stderr.trim() || err.message}`, { cause: err }))
      else resolve()
    })
  })
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

async function sign(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
): Promise<CertificatePair> {
  const keyFile = join(dir, `${name}.key`)
  const certFile = join(dir, `${name}.crt`)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  await writeFile(ext, extensions)
  await openssl(['req', ...EC, '-keyout', keyFile, '-out', csr, '-subj', subject], dir)
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      certFile,
    ],
    dir,
  )
  return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8'), certFile, keyFile }
}

const clientName = (cn: string) => {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(cn))
    throw new RangeError(`invalid common name ${JSON.stringify(cn)}: letters, digits, '.', '_', '-'`)
  return cn
}

/**
 * Makes a CA, a server certificate for loopback and a `root` client certificate in `dir` (EC P-256, valid
 * two days). Needs the `openssl` binary (OPENSSL_BIN or PATH).
 */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  await openssl(
    [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=etcdkit test CA',
    ],
    dir,
  )
  // etcd's own gRPC gateway dials etcd with the server certificate: it needs clientAuth too
  const server = await sign(
    dir,
    'server',
    '/CN=127.0.0.1',
    'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  )
  const issueClient = (cn: string) =>
    sign(dir, `client-${clientName(cn)}`, `/CN=${cn}`, 'extendedKeyUsage=clientAuth\n')
  const client = await issueClient('root')
  const anonymousClient = await sign(dir, 'anonymous', '/O=etcdkit test', 'extendedKeyUsage=clientAuth\n')
  const caFile = join(dir, 'ca.crt')
  return { ca: await readFile(caFile, 'utf8'), caFile, server, client, anonymousClient, issueClient }
}
