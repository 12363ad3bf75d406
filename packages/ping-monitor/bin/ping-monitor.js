#!/usr/bin/env node
import { execWithSettings, SMALL_HEAP_SETTINGS } from '@physarum/p2p/node-settings'

execWithSettings(SMALL_HEAP_SETTINGS)
await import('../src/main.ts')
