#!/usr/bin/env node
import { BULK_SETTINGS, execWithSettings } from '@physarum/p2p/node-settings'

execWithSettings(BULK_SETTINGS)
await import('../src/main.ts')
