import { UsageError } from './errors.ts'

/** An image name as `hl-cli add` takes it: `[host[:port]/]repository[:tag]`. */
export interface ImageRef {
  /** The registry host as Docker names it (`127.0.0.1:5000`, `docker.io`). */
  host: string
  /** The repository inside the registry (`hello`, `library/node`). */
  repository: string
  tag: string
  /** What the Docker engine calls the image: `127.0.0.1:5000/hello:1.0`. */
  local: string
  /** The local name without the tag, for push. */
  localRepository: string
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$/

/**
 * Parses an image name. Docker's rule decides what the first component is: a registry host when it
 * has a dot or a port or is `localhost`, else a path on Docker Hub. The tag defaults to `latest`.
 */
export function parseImageRef (name: string, flag = '<image-name>'): ImageRef {
  const bad = (why: string): never => {
    throw new UsageError(`${flag}: ${JSON.stringify(name)} ${why}; expected [host[:port]/]repository[:tag], e.g. 127.0.0.1:5000/hello:1.0`)
  }
  if (name.includes('@')) {
    bad('has a digest: name the image by tag; hl-cli gets the digest when it pushes')
  }
  let rest = name
  let host = 'docker.io'
  const slash = rest.indexOf('/')
  if (slash > 0) {
    const first = rest.slice(0, slash)
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!HOST.test(first)) {
        bad(`has a bad registry host ${JSON.stringify(first)}`)
      }
      host = first
      rest = rest.slice(slash + 1)
    }
  }
  let tag = 'latest'
  const colon = rest.lastIndexOf(':')
  if (colon >= 0) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) {
      bad(`has a bad tag ${JSON.stringify(tag)}`)
    }
  }
  const components = rest.split('/')
  if (rest === '' || !components.every(c => COMPONENT.test(c))) {
    bad('has a bad repository name (lowercase letters, digits and . _ -, components separated by /)')
  }
  const repository = host === 'docker.io' && components.length === 1 ? `library/${rest}` : rest
  const localRepository = host === 'docker.io' ? rest : `${host}/${rest}`
  return { host, repository, tag, local: `${localRepository}:${tag}`, localRepository }
}

/** The image reference by digest, as a service record holds it: `host[:port]/repository@sha256:<hex>`. */
export function imageByDigest (ref: ImageRef, digest: string): string {
  return `${ref.host}/${ref.repository}@${digest}`
}
