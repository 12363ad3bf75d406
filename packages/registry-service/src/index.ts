/**
 * @packageDocumentation
 *
 * The service registry of physarum: it maps a service name to the image (by digest), the content
 * hash and the RTT requirements the network needs to run and choose the service. Records live in
 * etcd under `/physarum/v1/services/<name>`; every write is an etcd transaction on the key's mod
 * revision, so two concurrent writers never lose an update silently (one gets CONFLICT).
 *
 * This entry is what other packages use: `createRegistryClient(node)` (finds registry-services
 * through the DHT, prefers the lowest RTT, fails over, caches Get results), the record type and
 * its validation, and the protocol. It loads nothing of etcd: the proxy's sidecar bundles it.
 * The daemon's own parts (the `/physarum/registry/1.0.0` handler in service.ts over the etcd
 * store in store.ts, the etcd supervisor in etcd-process.ts) stay inside the package.
 */

export { RegistryClient, createRegistryClient, isAmbiguous } from './client.ts'
export type { RegistryClientNode, RegistryClientOptions, RankedRegistry, WriteOptions, GetOptions, ListOptions, JoinAnswer } from './client.ts'
export { validateRecord, validateName, validateRevision, nameProblem, imageProblem, sameContent } from './record.ts'
export type { ServiceRecord, ServiceRecordInput } from './record.ts'
export { registryRpc, checkKnownFields, recordFromWire, recordToWire } from './protocol.ts'
export type { ListPage } from './store.ts'
export * from './constants.ts'
export * from './errors.ts'
export { trustedRegistries, withRegistryTrust } from './trust.ts'
export { childEnv, PHYSARUM_ENV } from './child-env.ts'
export type { RegistryTrustArgs } from './trust.ts'
