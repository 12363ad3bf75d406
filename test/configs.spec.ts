import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'

const ROOT = new URL('../', import.meta.url).pathname
const CONFIGS = join(ROOT, 'configs')
const run = promisify(execFile)

/** The metric names the daemons register (`name: 'physarum_...'` in their sources). */
async function registeredMetrics (): Promise<Set<string>> {
  const names = new Set<string>()
  for (const pkg of await readdir(join(ROOT, 'packages'))) {
    const src = join(ROOT, 'packages', pkg, 'src')
    for (const file of (await readdir(src).catch(() => [])).filter(f => f.endsWith('.ts'))) {
      for (const match of (await readFile(join(src, file), 'utf8')).matchAll(/name: '(physarum_[a-z_]+)'/g)) {
        names.add(match[1]!)
      }
    }
  }
  return names
}

/**
 * configs/ as an operator takes it (prometheus.yml is checked by the ping-monitor's Prometheus
 * test, with promtool): the Grafana dashboard, the systemd units and the environment file.
 */
describe('configs/', () => {
  let dir: string

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'physarum-configs-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('the Grafana dashboard parses, and queries only metrics the daemons export', async () => {
    const dashboard = JSON.parse(await readFile(join(CONFIGS, 'grafana', 'physarum-dashboard.json'), 'utf8')) as {
      title: string, uid: string, panels: Array<{ title: string, type: string, targets: Array<{ expr: string }> }>
    }
    assert.equal(dashboard.uid, 'physarum-overview')
    const known = await registeredMetrics()
    assert.ok(known.has('physarum_proxy_requests_total'), [...known].join(', '))
    const titles = dashboard.panels.map(p => p.title)
    for (const wanted of [/RTT to every peer/, /Cold start/, /Requests per service and status code/, /Instances per host/]) {
      assert.ok(titles.some(t => wanted.test(t)), `no panel ${wanted}: ${titles.join('; ')}`)
    }
    for (const panel of dashboard.panels) {
      assert.ok(panel.targets.length > 0, panel.title)
      for (const { expr } of panel.targets) {
        const metrics = [...expr.matchAll(/physarum_[a-z_]+/g)].map(m => m[0].replace(/_(bucket|sum|count)$/, ''))
        assert.ok(metrics.length > 0, `${panel.title}: ${expr}`)
        for (const metric of metrics) {
          assert.ok(known.has(metric), `${panel.title}: ${metric} is exported by no daemon`)
        }
      }
    }
  })

  it('the environment file shows the key, bootstrap, admins and registries to fill in, and puts nothing on a command line', async () => {
    const env = await readFile(join(CONFIGS, 'physarum.env.example'), 'utf8')
    const names = env.split('\n').filter(line => /^#?[A-Z_]+=/.test(line)).map(line => line.split('=')[0])
    // the key is the operator's to choose, and the peer ids are known only once the first daemons
    // ran: those wait commented out (a daemon refuses to start without a key)
    assert.deepEqual(names, ['#PHYSARUM_PSK', '#PHYSARUM_BOOTSTRAP', 'PHYSARUM_ETCD_IP', '#PHYSARUM_ETCD_CLUSTER', '#PHYSARUM_ETCD_ENDPOINTS', '#PHYSARUM_ADMINS', '#PHYSARUM_REGISTRY_IDS', 'PHYSARUM_LOG_LEVEL',
      'PHYSARUM_PING_MONITOR_ARGS', 'PHYSARUM_REGISTRY_SERVICE_ARGS', 'PHYSARUM_ALLOCATOR_ARGS', 'PHYSARUM_PROXY_ARGS'])
    // a host's own flags: none until the operator adds them
    for (const line of env.split('\n').filter(line => /^PHYSARUM_\w+_ARGS=/.test(line))) {
      assert.match(line, /^PHYSARUM_\w+_ARGS=$/)
    }
    for (const unit of await readdir(join(CONFIGS, 'systemd'))) {
      assert.doesNotMatch(await readFile(join(CONFIGS, 'systemd', unit), 'utf8'), /--psk\b/, `${unit} puts the key in argv`)
    }
  })

  it('the systemd units restart on failure, keep their identity in a StateDirectory and pass systemd-analyze verify', async (t) => {
    const units = (await readdir(join(CONFIGS, 'systemd'))).sort()
    assert.deepEqual(units, ['physarum-allocator.service', 'physarum-ping-monitor.service', 'physarum-proxy.service', 'physarum-registry-service.service'])
    const verify = await run('systemd-analyze', ['--version']).then(() => true, () => false)
    for (const unit of units) {
      const text = await readFile(join(CONFIGS, 'systemd', unit), 'utf8')
      const daemon = unit.replace(/^physarum-|\.service$/g, '')
      assert.match(text, /^Restart=on-failure$/m, unit)
      // the exit status of a stop by SIGTERM (test/install.spec.ts stops a daemon so)
      assert.match(text, /^SuccessExitStatus=143$/m, unit)
      assert.match(text, new RegExp(`^StateDirectory=physarum/${daemon}$`, 'm'), unit)
      assert.match(text, /^EnvironmentFile=\/etc\/physarum\/physarum\.env$/m, unit)
      assert.match(text, new RegExp(`^ExecStart=/usr/local/lib/physarum/node /opt/physarum/packages/${daemon}/bin/${daemon === 'registry-service' ? 'registry-service' : daemon}\\.js .*--state-dir \\$\\{STATE_DIRECTORY\\}`, 'm'), unit)
      // the host's own flags from the environment file, last and unquoted (systemd splits $VAR at
      // white space, and an empty one adds no argument), so a host needs no copy of ExecStart=;
      // a flag of one value may not also be in the unit, where the daemon would refuse it twice
      const args = `PHYSARUM_${daemon.toUpperCase().replace('-', '_')}_ARGS`
      const execStart = /^ExecStart=(.*)$/m.exec(text)![1]!
      assert.ok(execStart.endsWith(` $${args}`), `${unit}: ${execStart}`)
      assert.match(await readFile(join(CONFIGS, 'physarum.env.example'), 'utf8'), new RegExp(`^${args}=$`, 'm'))
      assert.doesNotMatch(execStart, /--(metrics-listen|listen|announce|hostname|bootstrap|swarm-key|psk-file|identity)\b/, unit)
      if (daemon === 'registry-service') {
        // a new etcd cluster unless the environment file, which wins over Environment=, says join
        // or external; the registry-service reads it from its environment, so the unit passes no
        // etcd flag, each of which one kind or another refuses
        assert.match(text, /^Environment=PHYSARUM_ETCD_CLUSTER=new\nEnvironmentFile=/m)
        assert.doesNotMatch(execStart, /--(new-etcd-cluster|join-etcd-cluster|etcd-[a-z-]+)\b|\$\{?PHYSARUM_ETCD/)
      }
      // the sandbox every daemon runs in (Node's JIT needs write-and-execute memory: no MemoryDenyWriteExecute)
      for (const directive of ['NoNewPrivileges=yes', 'ProtectHome=yes', 'PrivateTmp=yes', 'ProtectKernelTunables=yes', 'ProtectKernelModules=yes',
        'ProtectControlGroups=yes', 'LockPersonality=yes', 'RestrictNamespaces=yes', 'RestrictRealtime=yes', 'RestrictSUIDSGID=yes',
        'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK', 'SystemCallArchitectures=native', 'UMask=0077']) {
        assert.ok(text.split('\n').includes(directive), `${unit}: no ${directive}`)
      }
      assert.doesNotMatch(text, /MemoryDenyWriteExecute/, unit)
      if (!verify) {
        continue
      }
      // verify checks that the programs exist: point the unit at this checkout and this Node
      const local = text.replaceAll('/usr/local/lib/physarum/node', process.execPath).replaceAll('/opt/physarum/', ROOT).replaceAll('/etc/physarum/physarum.env', join(CONFIGS, 'physarum.env.example'))
      await writeFile(join(dir, unit), local)
      const { stderr } = await run('systemd-analyze', ['verify', join(dir, unit)]).catch((err: Error & { stderr?: string }) => ({ stderr: err.stderr ?? err.message }))
      // a container without systemd as PID 1 cannot look up the docker group or start a bus: not the unit's fault
      const problems = stderr.split('\n').filter(line => line.trim() !== '' && !/Failed to (connect to bus|resolve group docker|resolve user physarum)|System has not been booted/.test(line))
      assert.deepEqual(problems, [], unit)
    }
    if (!verify) {
      t.diagnostic('systemd-analyze is missing: the units were checked by their text only')
    }
  })
})
