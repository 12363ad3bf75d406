import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checkKnownFields, validateRecord, validateRevision } from '../src/index.ts'
import { Request } from '../src/pb/registry.js'
import { isPeerUrl } from '../src/service.ts'
import { sampleRecord } from './helpers.ts'
import type { InvalidRecordError } from '../src/index.ts'

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`

describe('record validation', () => {
  it('accepts the names and images of the design', () => {
    for (const name of ['hello-world-server', 'calc-server:1.1', 'a', 'svc.v2_x', 'calc-server:Latest_1.0-rc']) {
      assert.equal(validateRecord(sampleRecord(name)).name, name)
    }
    for (const image of [`registry.example.com:5000/hello@${DIGEST}`, `localhost:5000/a/b/c@${DIGEST}`, `docker.io/library/node:24@${DIGEST}`, `10.0.0.1/x@${DIGEST}`]) {
      assert.equal(validateRecord(sampleRecord('x', { image })).image, image)
    }
  })

  it('fills the optional fields and drops what the registry sets', () => {
    const minimal: Record<string, unknown> = { ...sampleRecord('x') }
    delete minimal.cpu
    delete minimal.memoryMb
    delete minimal.proxyClientMode
    assert.deepEqual(validateRecord({ ...minimal, revision: '7', createdAt: 'then' }), { ...minimal, cpu: 0, memoryMb: 0, proxyClientMode: false })
  })

  it('refuses a bad record with a message naming the field', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ name: '' }, 'name', /empty/],
      [{ name: 'Hello' }, 'name', /not a service name/],
      [{ name: 'a/b' }, 'name', /not a service name/],
      [{ name: '-a' }, 'name', /not a service name/],
      [{ name: 'a'.repeat(129) }, 'name', /more than 128/],
      [{ name: 7 }, 'name', /string/],
      [{ image: 'registry.example.com/hello:latest' }, 'image', /no sha256 digest/],
      [{ image: `hello@${DIGEST}` }, 'image', /not an image reference|registry host/],
      [{ image: `library/hello@${DIGEST}` }, 'image', /registry host/],
      [{ image: `registry.example.com/Hello@${DIGEST}` }, 'image', /not an image reference/],
      [{ image: `registry.example.com/hello@sha256:abc` }, 'image', /no sha256 digest/],
      [{ image: `registry.example.com/${'a'.repeat(600)}@${DIGEST}` }, 'image', /more than 512/],
      [{ contentHash: '' }, 'contentHash', /non-empty/],
      [{ contentHash: 'a b' }, 'contentHash', /only letters/],
      [{ softRttMs: 0 }, 'softRttMs', /positive/],
      [{ hardRttMs: -1 }, 'hardRttMs', /positive/],
      [{ softRttMs: Number.NaN }, 'softRttMs', /finite/],
      [{ softRttMs: '100' }, 'softRttMs', /finite number/],
      [{ softRttMs: 200, hardRttMs: 100 }, 'softRttMs', /more than hardRttMs/],
      [{ hardRttMs: 1e9 }, 'hardRttMs', /at most/],
      [{ cpu: -1 }, 'cpu', /at least 0/],
      [{ cpu: 5000 }, 'cpu', /at most 1024/],
      [{ memoryMb: 1.5 }, 'memoryMb', /whole number/],
      // limits every engine refuses, found only after the pull
      [{ cpu: 0.001 }, 'cpu', /0 \(no limit\) or at least 0\.01, not 0\.001/],
      [{ memoryMb: 4 }, 'memoryMb', /0 \(no limit\) or at least 6, not 4/],
      [{ proxyClientMode: 'yes' }, 'proxyClientMode', /true or false/],
      [{ colour: 'blue' }, 'colour', /unknown field/]
    ]
    for (const [overrides, field, message] of cases) {
      assert.throws(() => validateRecord(sampleRecord('x', overrides)), (err: InvalidRecordError) => {
        assert.equal(err.name, 'InvalidRecordError', JSON.stringify(overrides))
        assert.equal(err.field, field, JSON.stringify(overrides))
        assert.match(err.message, message, JSON.stringify(overrides))
        assert.ok(err.message.startsWith(`${field}: `), err.message)
        return true
      })
    }
    assert.throws(() => validateRecord(null), { name: 'InvalidRecordError', message: /record: must be an object/ })
  })

  it('takes an etcd peer URL as scheme://host:port, an IPv6 address however it is written', () => {
    for (const url of ['http://10.0.0.2:2380', 'https://etcd-1.example:2380', 'http://[fd00::2]:2380', 'http://[2001:DB8::1]:2380', 'http://[fd00:0:0::2]:2380', 'http://[::ffff:10.0.0.2]:2380', 'http://10.0.0.2:80']) {
      assert.equal(isPeerUrl(url), true, url)
    }
    for (const url of ['http://a:b:c', 'http://10.0.0.2', 'http://10.0.0.2:0', 'http://10.0.0.2:2380/path', 'http://user@10.0.0.2:2380', 'http://10.0.0.2:2380?x', 'ftp://10.0.0.2:2380', 'http://[fd00::2:2380', '10.0.0.2:2380']) {
      assert.equal(isPeerUrl(url), false, url)
    }
  })

  it('checks revisions', () => {
    assert.equal(validateRevision(0), '0')
    assert.equal(validateRevision(12n), '12')
    assert.equal(validateRevision('42'), '42')
    for (const bad of [-1, 1.5, '01', 'x', '', null]) {
      assert.throws(() => validateRevision(bad), { name: 'InvalidRecordError', message: /expectedRevision/ })
    }
  })
})

describe('unknown protobuf fields', () => {
  const good = Request.encode({ add: { record: { ...sampleRecord('x'), createdAt: '', updatedAt: '', revision: 0n }, expectedRevision: 3n } })

  it('lets every field of registry.proto through', () => {
    checkKnownFields(good)
    checkKnownFields(Request.encode({ list: { prefix: 'a', pageSize: 2, pageToken: 't' } }))
    checkKnownFields(Request.encode({ join: { memberName: 'n', peerUrls: ['http://127.0.0.1:2380'] } }))
  })

  it('names an unknown field, however deep', () => {
    // field 15, wire type 0, value 1
    assert.throws(() => { checkKnownFields(Uint8Array.from([...good, 15 << 3, 1])) }, /unknown field 15 in Request$/)
    const record = Uint8Array.from([...Request.encode({ get: { name: 'x' } }).subarray(2), 99 << 3 & 0x7f | 0x80, 99 >> 4, 1])
    const nested = Uint8Array.from([2 << 3 | 2, record.length, ...record])
    assert.throws(() => { checkKnownFields(nested) }, /unknown field 99 in Request\.get/)
    // a known field with the wrong wire type
    assert.throws(() => { checkKnownFields(Uint8Array.from([2 << 3 | 0, 1])) }, /Request\.get has wire type 0/)
    assert.throws(() => { checkKnownFields(Uint8Array.from([2 << 3 | 2, 10, 1])) }, /truncated/)
  })
})
