import { startEtcd } from '@etcdkit/testing'

/** The etcd to use: `ETCD_ENDPOINTS`, else a throwaway one started here (stopped by `close()`). */
export async function etcdEndpoints(): Promise<{
  endpoints: string[]
  started: boolean
  close(): Promise<void>
}> {
  const fromEnv = process.env.ETCD_ENDPOINTS?.split(',')
    .map((e) => e.trim())
    .filter(Boolean)
  if (fromEnv?.length) return { endpoints: fromEnv, started: false, close: async () => {} }
  const etcd = await startEtcd()
  return { endpoints: etcd.endpoints, started: true, close: () => etcd.close() }
}
