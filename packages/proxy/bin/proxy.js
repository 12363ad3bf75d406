#!/usr/bin/env node
import { execWithBulkSettings } from '@physarum/p2p/bulk'

execWithBulkSettings()
await import('../src/main.ts')
