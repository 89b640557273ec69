// Shared by the consumer scripts: the etcd of the run and a unique namespace per script.
const assert = require('node:assert/strict')

const endpoints = process.env.ETCD_ENDPOINTS.split(',')
const namespace = (name) => `pack-test-${name}-${process.pid}-${Date.now()}/`

/** The registration keys under `namespace`, read through the kit's raw etcd3 client. */
async function registered(kit, ns, service) {
  return kit.client.getAll().prefix(`${ns}services/${service}/`).keys()
}

module.exports = { assert, endpoints, namespace, registered }
