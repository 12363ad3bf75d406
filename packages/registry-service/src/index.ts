/**
 * @packageDocumentation
 *
 * The service registry of physarum: it maps a service name to the image (by digest), the content
 * hash and the RTT requirements the network needs to run and choose the service. Records live in
 * etcd under `/physarum/v1/services/<name>`; every write is an etcd transaction on the key's mod
 * revision, so two concurrent writers never lose an update silently (one gets CONFLICT).
 *
 * - `createRegistryClient(node)`: what proxy, allocator and hl-cli use. Finds registry-services
 *   through the DHT, prefers the lowest RTT, fails over, caches Get results.
 * - `createRegistryService(components, init)`: the `/physarum/registry/1.0.0` handler over a
 *   `RegistryStore` (etcd), with authorization and metrics.
 * - `EtcdProcess`: runs and supervises the etcd binary for the `registry-service` daemon.
 */

export { RegistryClient, createRegistryClient } from './client.ts'
export type { RegistryClientNode, RegistryClientOptions, RankedRegistry, WriteOptions, GetOptions, ListOptions, JoinAnswer } from './client.ts'
export { validateRecord, validateName, validateRevision, nameProblem, imageProblem, sameContent } from './record.ts'
export type { ServiceRecord, ServiceRecordInput } from './record.ts'
export { registryRpc, checkKnownFields, recordFromWire, recordToWire } from './protocol.ts'
export { createRegistryService } from './service.ts'
export type { RegistryService, RegistryServiceComponents, RegistryServiceInit, Operation } from './service.ts'
export { RegistryStore } from './store.ts'
export type { RegistryStoreInit, ListPage, StoreHealth } from './store.ts'
export { EtcdProcess, hasEtcdData, hostUrl } from './etcd-process.ts'
export type { EtcdProcessInit, EtcdStatus } from './etcd-process.ts'
export * from './constants.ts'
export * from './errors.ts'
