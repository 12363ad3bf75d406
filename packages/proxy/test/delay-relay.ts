/**
 * A host made far, for tests across network namespaces: relays each of `--ports` from
 * `--listen-host` to the same port on `--target-host`, every chunk held `--delay-ms` each way.
 * Prints "relaying" once every port listens; stops on SIGTERM or SIGINT.
 * Usage: node delay-relay.ts --listen-host 10.213.0.12 --target-host 10.213.0.3 --ports 4001,4300 --delay-ms 15
 */
import { parseArgs } from 'node:util'
import { startDelayRelay } from '../../p2p/test/helpers.ts'

const { values } = parseArgs({
  options: {
    'listen-host': { type: 'string' },
    'target-host': { type: 'string' },
    ports: { type: 'string' },
    'delay-ms': { type: 'string' }
  }
})
const ports = (values.ports ?? '').split(',').filter(Boolean).map(Number)
const delayMs = Number(values['delay-ms'])
if (values['listen-host'] == null || values['target-host'] == null || ports.length === 0 || ports.some(p => !Number.isInteger(p) || p < 1 || p > 65535) || !(delayMs >= 0)) {
  process.stderr.write('usage: delay-relay.ts --listen-host <ip> --target-host <ip> --ports <port,...> --delay-ms <ms>\n')
  process.exit(2)
}
const relays = await Promise.all(ports.map(async port => await startDelayRelay({ listen: { host: values['listen-host'], port }, target: { host: values['target-host'], port }, delayMs })))
process.stdout.write('relaying\n')
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => { void Promise.all(relays.map(async relay => { await relay.close() })).then(() => process.exit(0)) })
}
