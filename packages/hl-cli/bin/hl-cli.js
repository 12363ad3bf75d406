#!/usr/bin/env node
// docker-modem's debug output (DEBUG=modem, DEBUG=*) prints every request's options, an image
// registry's credentials among them: it stays off whatever DEBUG asks
if (process.env.DEBUG != null && process.env.DEBUG !== '') {
  process.env.DEBUG += ',-modem'
}
await import('../src/main.ts')
