import {
  MAX_CONTENT_HASH_LENGTH, MAX_CPU, MAX_IMAGE_LENGTH, MAX_MEMORY_MB, MAX_NAME_LENGTH, MAX_RTT_MS, MIN_CPU, MIN_MEMORY_MB
} from './constants.ts'
import { InvalidRecordError } from './errors.ts'

/** What a writer gives: the service and what the network needs to run and choose it. */
export interface ServiceRecordInput {
  /** `hello-world-server` or `calc-server:1.1` */
  name: string
  /** Names the service's instances in discovery (`physarum:service:<contentHash>`). */
  contentHash: string
  /** `host[:port]/repo@sha256:<64 hex digits>`: always pulled by digest. */
  image: string
  /** Within this RTT an instance is used as it is. */
  softRttMs: number
  /** Past this RTT an instance is not used at all. */
  hardRttMs: number
  /** CPU cores for an instance; 0 = no limit. */
  cpu: number
  /** Memory for an instance in MiB; 0 = no limit. */
  memoryMb: number
  proxyClientMode: boolean
}

/** A record as stored: the input plus what the registry keeps. */
export interface ServiceRecord extends ServiceRecordInput {
  /** RFC 3339, set when the name was first added. */
  createdAt: string
  /** RFC 3339, set on every write. */
  updatedAt: string
  /** The etcd mod revision of the record (decimal): give it back as `expectedRevision` to compare-and-swap. */
  revision: string
}

const INPUT_FIELDS = ['name', 'contentHash', 'image', 'softRttMs', 'hardRttMs', 'cpu', 'memoryMb', 'proxyClientMode'] as const
const STORED_FIELDS = [...INPUT_FIELDS, 'createdAt', 'updatedAt'] as const

// a Docker-style repository name (lowercase components joined by . _ -) and an optional tag
const NAME_PATTERN = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/
const CONTENT_HASH_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:+=-]*$/
const HOST_COMPONENT = '(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)'
const HOST = `(?:${HOST_COMPONENT}(?:\\.${HOST_COMPONENT})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]{1,5})?`
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const IMAGE_PATTERN = new RegExp(`^(${HOST})/(${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:([0-9a-f]{64})$`)
// what Date.toISOString() writes, and RFC 3339's other forms of the same
const RFC3339_PATTERN = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/
const IMAGE_EXAMPLE = 'registry.example.com:5000/hello-world-server@sha256:<64 lowercase hex digits>'

/** Why `name` is not a service name, or undefined when it is one. */
export function nameProblem (name: unknown): string | undefined {
  if (typeof name !== 'string') {
    return `must be a string, not ${describe(name)}`
  }
  if (name === '') {
    return 'must not be empty'
  }
  if (name.length > MAX_NAME_LENGTH) {
    return `is ${name.length} characters long, more than ${MAX_NAME_LENGTH}`
  }
  if (!NAME_PATTERN.test(name)) {
    return `${JSON.stringify(name)} is not a service name: lowercase letters and digits, separated by single . _ or -, and an optional :tag (e.g. hello-world-server or calc-server:1.1)`
  }
  return undefined
}

/** Throws InvalidRecordError (field `name`) unless `name` is a service name. */
export function validateName (name: unknown, field = 'name'): string {
  const problem = nameProblem(name)
  if (problem != null) {
    throw new InvalidRecordError(field, problem)
  }
  return name as string
}

/** Why `image` is not an image reference by digest, or undefined when it is one. */
export function imageProblem (image: unknown): string | undefined {
  if (typeof image !== 'string') {
    return `must be a string, not ${describe(image)}`
  }
  if (image.length > MAX_IMAGE_LENGTH) {
    return `is ${image.length} characters long, more than ${MAX_IMAGE_LENGTH}`
  }
  const match = IMAGE_PATTERN.exec(image)
  if (match == null) {
    if (!/@sha256:[0-9a-f]{64}$/.test(image)) {
      return `${JSON.stringify(image)} has no sha256 digest: images are pulled by digest only, as ${IMAGE_EXAMPLE}`
    }
    return `${JSON.stringify(image)} is not an image reference: expected ${IMAGE_EXAMPLE}`
  }
  const host = match[1]!
  // Docker's rule: the first component is a registry host only with a dot, a port or "localhost"
  if (!host.includes('.') && !host.includes(':') && !host.startsWith('[') && host !== 'localhost') {
    return `${JSON.stringify(image)} does not start with a registry host: expected ${IMAGE_EXAMPLE} (docker.io/library/... for Docker Hub)`
  }
  return undefined
}

function describe (value: unknown): string {
  if (value === null || value === undefined) {
    return String(value)
  }
  if (Array.isArray(value)) {
    return 'an array'
  }
  // not quoted whole: a value written past the registry may be larger than an answer may be, and
  // the answer naming it would fail, with every other name of its GetMany
  if (typeof value === 'string' && value.length > 64) {
    return `a string of ${value.length} characters`
  }
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`
}

function numberField (record: Record<string, unknown>, field: string, min: number, max: number, options: { integer?: boolean, positive?: boolean } = {}): number {
  const value = record[field]
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidRecordError(field, `must be a finite number, not ${describe(value)}`)
  }
  if (options.integer === true && !Number.isInteger(value)) {
    throw new InvalidRecordError(field, `must be a whole number, not ${value}`)
  }
  if (options.positive === true ? value <= 0 : value < min) {
    throw new InvalidRecordError(field, `must be ${options.positive === true ? 'positive' : `at least ${min}`}, not ${value}`)
  }
  if (value > max) {
    throw new InvalidRecordError(field, `must be at most ${max}, not ${value}`)
  }
  return value
}

/**
 * Checks a record given by a writer and returns it with only the known fields. Missing `cpu`,
 * `memoryMb` and `proxyClientMode` default to 0, 0 and false. Throws InvalidRecordError naming the
 * first bad field, or the unknown one.
 */
export function validateRecord (input: unknown): ServiceRecordInput {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidRecordError('record', `must be an object, not ${describe(input)}`)
  }
  const record = input as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!(INPUT_FIELDS as readonly string[]).includes(key) && !['createdAt', 'updatedAt', 'revision'].includes(key)) {
      throw new InvalidRecordError(key, `unknown field; a record has ${INPUT_FIELDS.join(', ')}`)
    }
  }
  const name = validateName(record.name)
  const contentHash = record.contentHash
  if (typeof contentHash !== 'string' || contentHash === '') {
    throw new InvalidRecordError('contentHash', `must be a non-empty string, not ${describe(contentHash)}`)
  }
  if (contentHash.length > MAX_CONTENT_HASH_LENGTH) {
    throw new InvalidRecordError('contentHash', `is ${contentHash.length} characters long, more than ${MAX_CONTENT_HASH_LENGTH}`)
  }
  if (!CONTENT_HASH_PATTERN.test(contentHash)) {
    throw new InvalidRecordError('contentHash', `${JSON.stringify(contentHash)} may hold only letters, digits and . _ : + = -`)
  }
  const imageError = imageProblem(record.image)
  if (imageError != null) {
    throw new InvalidRecordError('image', imageError)
  }
  const softRttMs = numberField(record, 'softRttMs', 0, MAX_RTT_MS, { positive: true })
  const hardRttMs = numberField(record, 'hardRttMs', 0, MAX_RTT_MS, { positive: true })
  if (softRttMs > hardRttMs) {
    throw new InvalidRecordError('softRttMs', `${softRttMs} is more than hardRttMs ${hardRttMs}: the soft requirement must be at most the hard one`)
  }
  const cpu = record.cpu === undefined ? 0 : numberField(record, 'cpu', 0, MAX_CPU)
  const memoryMb = record.memoryMb === undefined ? 0 : numberField(record, 'memoryMb', 0, MAX_MEMORY_MB, { integer: true })
  // below these, every engine refuses to start the container, after the image was pulled
  if (cpu > 0 && cpu < MIN_CPU) {
    throw new InvalidRecordError('cpu', `must be 0 (no limit) or at least ${MIN_CPU}, not ${cpu}`)
  }
  if (memoryMb > 0 && memoryMb < MIN_MEMORY_MB) {
    throw new InvalidRecordError('memoryMb', `must be 0 (no limit) or at least ${MIN_MEMORY_MB}, not ${memoryMb}`)
  }
  const proxyClientMode = record.proxyClientMode ?? false
  if (typeof proxyClientMode !== 'boolean') {
    throw new InvalidRecordError('proxyClientMode', `must be true or false, not ${describe(proxyClientMode)}`)
  }
  return { name, contentHash, image: record.image as string, softRttMs, hardRttMs, cpu, memoryMb, proxyClientMode }
}

/** The JSON stored in etcd for a record (no revision: that is etcd's own). */
export function toStoredJson (record: Omit<ServiceRecord, 'revision'>): string {
  const stored: Record<string, unknown> = {}
  for (const field of STORED_FIELDS) {
    stored[field] = record[field]
  }
  return JSON.stringify(stored)
}

/** Reads a value from etcd. Throws when someone wrote something else under the registry's prefix. */
export function fromStoredJson (json: string, revision: string): ServiceRecord {
  const value = JSON.parse(json) as unknown
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidRecordError('record', `must be an object, not ${describe(value)}`)
  }
  const { createdAt, updatedAt } = value as Record<string, unknown>
  // fields a newer registry-service stores are left out, not refused: registries of two versions
  // share one etcd during a rolling upgrade
  const input = Object.fromEntries(INPUT_FIELDS.filter(field => Object.hasOwn(value, field)).map(field => [field, (value as Record<string, unknown>)[field]]))
  const record = validateRecord(input)
  // bounded like every other field: a value written past the registry with a huge one would make
  // every answer that holds it (a GetMany, a List page) too large to send, failing its other names
  for (const [field, time] of [['createdAt', createdAt], ['updatedAt', updatedAt]] as const) {
    if (typeof time !== 'string' || !RFC3339_PATTERN.test(time)) {
      throw new InvalidRecordError(field, `must be an RFC 3339 time as the registry writes it, not ${describe(time)}`)
    }
  }
  return { ...record, createdAt: createdAt as string, updatedAt: updatedAt as string, revision }
}

/** Whether two records say the same thing (timestamps and revision aside). */
export function sameContent (a: ServiceRecordInput, b: ServiceRecordInput): boolean {
  return INPUT_FIELDS.every(field => a[field] === b[field])
}

/** Checks a revision given by a caller: a decimal etcd revision. */
export function validateRevision (revision: unknown, field = 'expectedRevision'): string {
  if (typeof revision === 'bigint' && revision >= 0n) {
    return revision.toString()
  }
  if (typeof revision === 'number' && Number.isSafeInteger(revision) && revision >= 0) {
    return String(revision)
  }
  if (typeof revision === 'string' && /^(0|[1-9][0-9]{0,18})$/.test(revision)) {
    return revision
  }
  throw new InvalidRecordError(field, `must be a revision (a whole number, 0 for "must not exist yet"), not ${describe(revision)}`)
}
