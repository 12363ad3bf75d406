import { peerIdFromString } from '@libp2p/peer-id'
import { allocatorCapacity } from '@physarum/allocator/client'
import { ALLOCATOR_TOPIC, formatDuration, parseNumber, REGISTRY_TOPIC, serviceTopic } from '@physarum/p2p'
import { trustedRegistries } from '@physarum/registry-service'
import { DEFAULT_RTT_TIMEOUT_MS, RTT_SAMPLES } from '../constants.ts'
import { printJson, printText, runCommand, table } from '../output.ts'
import { describePeer, mapLimit, openOverlay, withOverlayOptions } from '../overlay.ts'
import { createProgress } from '../progress.ts'
import type { Overlay, OverlayArgs, PeerSummary } from '../overlay.ts'
import type { PeerId } from '@libp2p/interface'
import type { Capacity } from '@physarum/allocator/client'
import type { ServiceRecord } from '@physarum/registry-service'
import type { Argv } from 'yargs'

interface StatusArgs extends OverlayArgs { 'max-services': string }

/** `status --json`: the overlay as seen from this hl-cli. */
export interface StatusReport {
  self: { peerId: string, addrs: string[] }
  peers: PeerSummary[]
  registries: PeerSummary[]
  /** Each allocator with its capacity in use and limits (0: no limit); null when it did not answer. */
  allocators: Array<PeerSummary & { capacity: Capacity | null }>
  /** Each service with its instances; null when their lookup had not begun once --timeout had passed. */
  services: Array<{ name: string, contentHash: string, softRttMs: number, hardRttMs: number, instances: PeerSummary[] | null }>
  /** What this report could not say, and why. */
  notes: string[]
}

export const command = 'status'
export const describe = 'The overlay as it looks from here: peers with RTT (the lowest of up to 4 pings), registries, allocators, and instances per service'

export function builder (yargs: Argv): Argv<StatusArgs> {
  return withOverlayOptions(yargs)
    .option('max-services', { type: 'string', default: '50', describe: 'Look up instances of at most this many services' })
    .strictOptions()
}

/** The providers of `topic` found within `timeoutMs`; a lookup that fails otherwise adds a note. */
async function providers (overlay: Overlay, topic: string, timeoutMs: number, notes: string[]): Promise<PeerId[]> {
  const found: PeerId[] = []
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    for await (const provider of overlay.node.discovery.findProviders(topic, { signal })) {
      if (!provider.id.equals(overlay.node.peerId)) {
        if (provider.multiaddrs.length > 0) {
          await overlay.node.libp2p.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs }).catch(() => {})
        }
        found.push(provider.id)
      }
    }
  } catch (err) {
    // at the deadline, what was found so far is the answer
    if (!signal.aborted) {
      notes.push(`${topic}: the lookup failed after ${found.length} found (${(err as Error).message})`)
    }
  }
  return found
}

/**
 * The RTT to each of `peers` (by peer id), for those that answer: the lowest of a ping taken while
 * connecting (8 peers at a time) and RTT_SAMPLES more taken once every peer is connected, one peer
 * after another, until `samplesUntil` (a Date.now() time): a peer not sampled by then keeps its
 * first ping. A ping taken beside others counts the time this process spent on them: on
 * loopback the first pings read 0.3 to 2.4 ms, growing with the number of peers, and pings of 8
 * peers at a time 0.3 to 1 ms, against 0.2 to 0.35 ms one after another.
 */
export async function measureAll (overlay: Overlay, peers: PeerId[], rtts = new Map<string, number>(), samplesUntil = Infinity): Promise<Map<string, number>> {
  const ping = async (peer: PeerId): Promise<number> => await overlay.node.measureRtt(peer, { signal: AbortSignal.timeout(DEFAULT_RTT_TIMEOUT_MS) })
  const unique = [...new Map(peers.map(peer => [peer.toString(), peer])).values()].filter(peer => !rtts.has(peer.toString()))
  const connected = await mapLimit(unique, 8, async peer => await ping(peer).catch(() => undefined))
  for (const [i, peer] of unique.entries()) {
    let lowest = connected[i]
    // one peer after another, the samples of a large overlay (or of one with slow peers) can
    // take minutes: past the deadline the first ping is the answer
    for (let sample = 0; lowest != null && sample < RTT_SAMPLES && Date.now() < samplesUntil; sample++) {
      const ms = await ping(peer).catch(() => undefined)
      if (ms == null) {
        break // it answered once: listed with that RTT, not waited on again
      }
      lowest = Math.min(lowest, ms)
    }
    if (lowest != null) {
      rtts.set(peer.toString(), lowest)
    }
  }
  return rtts
}

/** `peers` described, with their RTTs from `rtts`, nearest first (unreachable last). */
async function summaries (overlay: Overlay, peers: PeerId[], rtts: Map<string, number>): Promise<PeerSummary[]> {
  const described = await Promise.all(peers.map(async peer => await describePeer(overlay.node, peer, rtts.get(peer.toString()))))
  return described.sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity))
}

const rttText = (p: PeerSummary): string => p.rttMs == null ? 'unreachable' : `${p.rttMs} ms`

export async function handler (args: StatusArgs): Promise<void> {
  await runCommand(async () => {
    const maxServices = parseNumber('--max-services', args['max-services'], 1, true)
    const overlay = await openOverlay(args, process.env)
    // each step may wait for silent peers: say what is under way (stderr; stdout keeps the report)
    const progress = createProgress({ out: process.stderr })
    try {
      const lookup = Math.min(args.timeout, 5_000)
      const notes: string[] = []
      progress.line('Looking for registries and allocators')
      const [registryIds, allocatorIds] = await Promise.all([providers(overlay, REGISTRY_TOPIC, lookup, notes), providers(overlay, ALLOCATOR_TOPIC, lookup, notes)])
      progress.line('Reading the services from the registry')
      let records: ServiceRecord[] = []
      try {
        for await (const record of overlay.client.listAll({ signal: AbortSignal.timeout(args.timeout) })) {
          records.push(record)
        }
      } catch (err) {
        notes.push(`services: the registry could not be read (${(err as Error).message})`)
      }
      if (records.length > maxServices) {
        notes.push(`instances were looked up for the first ${maxServices} of ${records.length} services (--max-services)`)
        records = records.slice(0, maxServices)
      }
      progress.line(`Looking for the instances of ${records.length} service${records.length === 1 ? '' : 's'}`)
      // one lookup after another per lane, many services in a sparse DHT (each lookup waiting its
      // full time) took minutes: past the deadline no lookup begins, as the RTT samples below
      const lookupsUntil = Date.now() + args.timeout
      const instanceIds = await mapLimit(records, 4, async record => Date.now() < lookupsUntil ? await providers(overlay, serviceTopic(record.contentHash), lookup, notes) : null)
      const skipped = records.filter((_, i) => instanceIds[i] == null).map(record => record.name)
      if (skipped.length > 0) {
        notes.push(`instances were not looked up for ${skipped.length} of ${records.length} services, as --timeout (${formatDuration(args.timeout)}) had passed: ${skipped.join(', ')}; give a longer --timeout, or fewer --max-services`)
      }
      const toMeasure = [...registryIds, ...allocatorIds, ...instanceIds.flatMap(ids => ids ?? []), ...overlay.node.libp2p.getPeers()]
      progress.line(`Measuring the RTT to ${new Set(toMeasure.map(String)).size} peers`)
      const samplesUntil = Date.now() + args.timeout
      const rtts = await measureAll(overlay, toMeasure, undefined, samplesUntil)
      // every peer this node knows by now: the connected ones, the providers found above among them
      const connected = overlay.node.libp2p.getPeers()
      await measureAll(overlay, connected, rtts, samplesUntil)
      const [peers, registries, allocators, services] = await Promise.all([
        summaries(overlay, connected, rtts),
        summaries(overlay, registryIds, rtts),
        summaries(overlay, allocatorIds, rtts),
        Promise.all(records.map(async (record, i) => ({
          name: record.name,
          contentHash: record.contentHash,
          softRttMs: record.softRttMs,
          hardRttMs: record.hardRttMs,
          instances: instanceIds[i] == null ? null : await summaries(overlay, instanceIds[i], rtts)
        })))
      ])
      // listed all the same: one that announces itself without being trusted is worth seeing
      const trusted = trustedRegistries(args, process.env)
      for (const registry of registries) {
        if (trusted.length > 0 && !trusted.includes(registry.peerId)) {
          notes.push(`registry ${registry.peerId} announces itself but is not trusted (--registry-id, PHYSARUM_REGISTRY_IDS): it is not asked`)
        }
      }
      // 8 at a time, each up to its own limit: past --timeout no question begins, as above
      const askUntil = Date.now() + args.timeout
      const unasked: string[] = []
      const allocatorReports = await mapLimit(allocators, 8, async allocator => {
        if (Date.now() >= askUntil) {
          unasked.push(allocator.peerId)
          return { ...allocator, capacity: null }
        }
        try {
          return { ...allocator, capacity: await allocatorCapacity(overlay.node.libp2p, peerIdFromString(allocator.peerId), { signal: AbortSignal.timeout(lookup) }) }
        } catch (err) {
          notes.push(`allocator ${allocator.peerId}: no capacity (${(err as Error).message})`)
          return { ...allocator, capacity: null }
        }
      })
      if (unasked.length > 0) {
        notes.push(`capacity was not asked of ${unasked.length} of ${allocators.length} allocators, as --timeout (${formatDuration(args.timeout)}) had passed: ${unasked.join(', ')}; give a longer --timeout`)
      }
      const report: StatusReport = {
        self: { peerId: overlay.node.peerId.toString(), addrs: overlay.node.multiaddrs().map(String) },
        peers,
        registries,
        allocators: allocatorReports,
        services,
        notes
      }
      if (args.json === true) {
        printJson(report)
        return
      }
      const out: string[] = [`This hl-cli: ${report.self.peerId}\n`]
      const peerTable = (list: PeerSummary[]): string => table(['PEER', 'HOST', 'ROLE', 'RTT'], list.map(p => [p.peerId, p.host ?? '-', p.role ?? '-', rttText(p)]))
      out.push(`\nPeers (${peers.length}):\n`, peers.length === 0 ? '  none\n' : peerTable(peers))
      out.push(`\nRegistries (${registries.length}):\n`, registries.length === 0 ? '  none found\n' : peerTable(registries))
      const limit = (used: number, max: number, unit = ''): string => `${Math.round(used * 100) / 100}${unit}/${max > 0 ? `${max}${unit}` : 'any'}`
      const capacityText = (c: Capacity | null): string => c == null ? 'unknown' : `${limit(c.instances, c.maxInstances)} instances, ${limit(c.cpu, c.cpuBudget)} CPU, ${limit(c.memoryMb, c.memoryBudgetMb, ' MiB')}`
      out.push(`\nAllocators (${report.allocators.length}):\n`, report.allocators.length === 0
        ? '  none found\n'
        : table(['PEER', 'HOST', 'RTT', 'CAPACITY IN USE'], report.allocators.map(a => [a.peerId, a.host ?? '-', rttText(a), capacityText(a.capacity)])))
      out.push(`\nServices (${services.length}):\n`)
      for (const service of services) {
        const found = service.instances == null ? 'not looked up (--timeout)' : service.instances.length === 0 ? 'no instances' : `${service.instances.length} instance(s)`
        out.push(`  ${service.name} (soft ${service.softRttMs} ms, hard ${service.hardRttMs} ms): ${found}\n`)
        for (const instance of service.instances ?? []) {
          out.push(`    ${instance.peerId}  ${instance.host ?? '-'}  ${rttText(instance)}\n`)
        }
      }
      out.push(...notes.map(n => `\nNote: ${n}\n`))
      printText(out.join(''))
    } finally {
      await overlay.close()
    }
  })
}
