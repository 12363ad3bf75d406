/**
 * What `add` says while it builds and pushes, on stderr (stdout keeps the summary, or the JSON).
 * On a terminal the byte counts of transfers share one line, redrawn in place; otherwise every
 * message is a plain line, and byte counts come at each layer's changes of state and at most
 * every `intervalMs`.
 */
export interface Progress {
  /** A step or a line of build output. */
  line(text: string): void
  /** A transfer's state (`Pushing`, `Pushed`, ...) and bytes so far. */
  transfer(id: string, status: string, current?: number, total?: number): void
  /** Ends the transfers' line on a terminal. */
  done(): void
}

export interface ProgressInit {
  out: NodeJS.WritableStream & { isTTY?: boolean }
  /** Nothing at all (`--quiet`). */
  quiet?: boolean
  intervalMs?: number
}

export function formatBytes (bytes: number): string {
  if (bytes < 1024) {
    return `${bytes} B`
  }
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

interface Transfer { status: string, current: number, total: number }

export function createProgress (init: ProgressInit): Progress {
  const { out } = init
  const tty = out.isTTY === true
  const intervalMs = init.intervalMs ?? 2_000
  const transfers = new Map<string, Transfer>()
  let lastSummary = 0
  let statusLineShown = false

  const summary = (): string => {
    let current = 0
    let total = 0
    let finished = 0
    for (const t of transfers.values()) {
      current += t.current
      total += t.total
      finished += /^(Pushed|Layer already exists|Mounted from|Pull complete|Already exists)/.test(t.status) ? 1 : 0
    }
    return `  ${finished}/${transfers.size} layers done, ${formatBytes(current)}${total > 0 ? ` of ${formatBytes(total)}` : ''}`
  }
  const clearStatus = (): void => {
    if (statusLineShown) {
      out.write('\r\x1b[K')
      statusLineShown = false
    }
  }

  return {
    line (text) {
      if (init.quiet === true) {
        return
      }
      clearStatus()
      out.write(`${text}\n`)
    },
    transfer (id, status, current, total) {
      if (init.quiet === true) {
        return
      }
      const before = transfers.get(id)
      const now: Transfer = {
        status,
        current: current ?? (before?.status === status ? before.current : (before?.total ?? 0)),
        total: total ?? before?.total ?? 0
      }
      transfers.set(id, now)
      if (tty) {
        out.write(`\r\x1b[K${summary().trim()}`)
        statusLineShown = true
        return
      }
      const changed = before?.status !== status
      if (changed) {
        out.write(`  ${id}: ${status}${now.total > 0 ? ` (${formatBytes(now.total)})` : ''}\n`)
      }
      if (Date.now() - lastSummary >= intervalMs && now.current > 0) {
        lastSummary = Date.now()
        out.write(`${summary()}\n`)
      }
    },
    done () {
      if (init.quiet === true) {
        return
      }
      if (transfers.size > 0) {
        clearStatus()
        out.write(`${summary()}\n`)
      }
      transfers.clear()
    }
  }
}
