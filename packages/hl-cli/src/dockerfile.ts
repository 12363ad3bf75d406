import { DEFAULT_FROM, IMAGE_LABEL_PREFIX, WORKDIR } from './constants.ts'
import type { ImageConf } from './image-conf.ts'

export interface DockerfileInit {
  /** Overrides DockerConf.From (e.g. a locally built base image). */
  from?: string
  /** The service name, for the labels. */
  service: string
  /** The image's tag, for the labels. */
  version?: string
}

// a command with no shell syntax beyond words and $VARIABLES can replace the shell (exec), so the
// service is PID 1 and gets the stop signal itself
const SIMPLE_COMMAND = /^[^;&|()<>`\n\\'"*?[\]{}#~]*$/
/** Its leading variable assignments (`PORT=$SERVICE_PORT node server.js`): exec goes after them. */
const ASSIGNMENTS = /^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*/

/** The command run by /bin/sh -c: a simple one as `exec`, unless it already is. */
function shellCommand (cmd: string): string {
  if (!SIMPLE_COMMAND.test(cmd)) {
    return cmd
  }
  const assignments = ASSIGNMENTS.exec(cmd)![0]
  const command = cmd.slice(assignments.length)
  return command === '' || /^exec(\s|$)/.test(command) ? cmd : `${assignments}exec ${command}`
}

/**
 * The Dockerfile of a service: FROM, WORKDIR /app, each Copy, each Run (through /bin/sh -c), OCI
 * and physarum labels, and the Cmd run by /bin/sh -c so `$SERVICE_PORT` expands when the container
 * starts. No timestamps: the same inputs give the same image.
 */
export function generateDockerfile (conf: ImageConf, init: DockerfileInit): string {
  const lines = [`FROM ${init.from ?? conf.from ?? DEFAULT_FROM}`, `WORKDIR ${WORKDIR}`]
  for (const { sources, dest } of conf.copy) {
    // a destination folder needs its trailing slash when there are several sources
    const target = sources.length > 1 && !dest.endsWith('/') ? `${dest}/` : dest
    lines.push(`COPY ${JSON.stringify([...sources, target])}`)
  }
  for (const run of conf.run) {
    lines.push(`RUN ${JSON.stringify(['/bin/sh', '-c', run])}`)
  }
  const labels: Record<string, string> = {
    'org.opencontainers.image.title': init.service,
    ...(init.version == null ? {} : { 'org.opencontainers.image.version': init.version }),
    'org.opencontainers.image.description': `physarum service ${init.service}, built by hl-cli`,
    [`${IMAGE_LABEL_PREFIX}service-name`]: init.service,
    [`${IMAGE_LABEL_PREFIX}soft-rtt-ms`]: String(conf.softRttMs),
    [`${IMAGE_LABEL_PREFIX}hard-rtt-ms`]: String(conf.hardRttMs),
    [`${IMAGE_LABEL_PREFIX}proxy-client-mode`]: String(conf.proxyClientMode)
  }
  lines.push(`LABEL ${Object.entries(labels).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(' \\\n      ')}`)
  const cmd = conf.cmd.trim()
  lines.push(`CMD ${JSON.stringify(['/bin/sh', '-c', shellCommand(cmd)])}`)
  return `${lines.join('\n')}\n`
}
