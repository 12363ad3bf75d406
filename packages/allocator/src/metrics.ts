import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'

export const PHASES = ['pull', 'create', 'start', 'ready', 'total'] as const
export type Phase = typeof PHASES[number]

export interface AllocatorMetrics {
  instances: Gauge<'service' | 'state'>
  allocations: Counter<'outcome'>
  coldStart: Histogram<'phase'>
  restarts: Counter<'service' | 'container'>
  reaps: Counter<'reason'>
  failed: Counter<'service'>
  capacityUsed: Gauge<'resource'>
  capacityLimit: Gauge<'resource'>
}

/** The allocator's metrics; `engineUp` answers physarum_alloc_docker_up at each scrape. */
export function createAllocatorMetrics (registry: Registry, engineUp: () => Promise<boolean>): AllocatorMetrics {
  const dockerUp = new Gauge({
    name: 'physarum_alloc_docker_up',
    help: '1 when the Docker engine answered a ping at this scrape, 0 otherwise',
    registers: [registry],
    collect: async () => {
      dockerUp.set(await engineUp() ? 1 : 0)
    }
  })
  return {
    instances: new Gauge({ name: 'physarum_alloc_instances', help: 'Instances on this host by service and state', labelNames: ['service', 'state'], registers: [registry] }),
    allocations: new Counter({ name: 'physarum_alloc_allocations_total', help: 'Allocate requests by outcome (started, reused, shared, or the failure code)', labelNames: ['outcome'], registers: [registry] }),
    coldStart: new Histogram({
      name: 'physarum_alloc_cold_start_seconds',
      help: 'Time per phase of a cold start (pull, create, start, ready, total)',
      labelNames: ['phase'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers: [registry]
    }),
    restarts: new Counter({ name: 'physarum_alloc_restarts_total', help: 'Containers restarted after they exited', labelNames: ['service', 'container'], registers: [registry] }),
    reaps: new Counter({ name: 'physarum_alloc_reaps_total', help: 'Instances drained and removed, by reason', labelNames: ['reason'], registers: [registry] }),
    failed: new Counter({ name: 'physarum_alloc_failed_instances_total', help: 'Instances given up on: too many restarts, a restarted sidecar that did not check in within the ready timeout, a restarted service its sidecar did not find listening within it, or a sidecar that stopped sending stats', labelNames: ['service'], registers: [registry] }),
    capacityUsed: new Gauge({ name: 'physarum_alloc_capacity_used', help: 'Capacity in use: instances, cpu (cores), memory_bytes', labelNames: ['resource'], registers: [registry] }),
    capacityLimit: new Gauge({ name: 'physarum_alloc_capacity_limit', help: 'Capacity limits (0: none): instances, cpu (cores), memory_bytes', labelNames: ['resource'], registers: [registry] })
  }
}
