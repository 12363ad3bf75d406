import { RpcFailureError } from '@physarum/p2p'
import { NotFoundError } from './errors.ts'
import { table } from './output.ts'
import type { ServiceRecord } from '@physarum/registry-service'

const HEADER = ['NAME', 'IMAGE', 'SOFT RTT', 'HARD RTT', 'CPU', 'MEMORY', 'PROXY CLIENT', 'CONTENT HASH', 'UPDATED']

export function recordRow (r: ServiceRecord): string[] {
  return [r.name, r.image, `${r.softRttMs} ms`, `${r.hardRttMs} ms`, r.cpu === 0 ? '-' : String(r.cpu), r.memoryMb === 0 ? '-' : `${r.memoryMb} MiB`,
    r.proxyClientMode ? 'yes' : 'no', r.contentHash, r.updatedAt]
}

export function recordsTable (records: ServiceRecord[]): string {
  return table(HEADER, records.map(recordRow))
}

/** One record as `key: value` lines. */
export function recordDetails (r: ServiceRecord): string {
  const rows: Array<[string, string]> = [
    ['name', r.name], ['image', r.image], ['content hash', r.contentHash], ['soft RTT', `${r.softRttMs} ms`], ['hard RTT', `${r.hardRttMs} ms`],
    ['cpu', r.cpu === 0 ? 'no limit' : `${r.cpu} cores`], ['memory', r.memoryMb === 0 ? 'no limit' : `${r.memoryMb} MiB`],
    ['proxy client mode', String(r.proxyClientMode)], ['created', r.createdAt], ['updated', r.updatedAt], ['revision', r.revision]
  ]
  return rows.map(([k, v]) => `${`${k}:`.padEnd(19)}${v}\n`).join('')
}

/** NOT_FOUND from the registry, as the message a user reads. */
export function notFound (err: unknown, name: string): unknown {
  return err instanceof RpcFailureError && err.code === 'NOT_FOUND' ? new NotFoundError(`No service named ${name} in the registry`) : err
}
