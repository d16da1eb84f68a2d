// Tools of the replica-link scenarios (replica-link.test.ts): write load from
// one client in sequence, so that the order in which orders were
// acknowledged is the order of their creation, next to list reads whose
// pages are kept, and the verdict on each page: did it miss an order
// acknowledged long enough before it was sent?
import { sleep } from "./harness.js"

const PLATFORM_LIMIT_MS = 10_000

export interface Ack {
  /** position in the writer's sequence: 0, 1, 2… */
  readonly seq: number
  readonly reference: string
  /** when the 201 arrived */
  readonly at: number
}

export interface ListRead {
  readonly sentAt: number
  readonly answeredAt: number
  readonly status: number
  /** the page's references, newest first; empty without a 200 */
  readonly references: ReadonlyArray<string>
}

export interface LinkLoadResult {
  sent: number
  ok: number
  typed503: number
  /** what every answer that was neither 2xx nor a typed 503 said */
  other: Array<string>
  maxLatencyMs: number
  acks: Array<Ack>
  acknowledged: Set<string>
  lists: Array<ListRead>
}

export interface LinkLoadOptions {
  /** list readers, each sending GET /purchase-orders?limit=… in a loop */
  readonly readers: number
  readonly pageSize: number
  /** references and idempotency keys start with it */
  readonly prefix: string
  readonly writePauseMs: number
  readonly readPauseMs: number
  /** the load ends by itself after this long, should `stop` never be called */
  readonly maxDurationMs: number
}

const isTyped503 = (status: number, response: Response, text: string) => {
  if (status !== 503 || response.headers.get("retry-after") === null) return false
  try {
    return (JSON.parse(text) as { _tag?: unknown })._tag === "DatabaseUnavailable"
  } catch {
    return false
  }
}

/**
 * One writer that POSTs orders one after the other (a typed 503 is sent
 * again with the same Idempotency-Key, at most 5 times) and `readers` list
 * readers, on loopback, until `stop()` or `maxDurationMs`.
 */
export const startLinkLoad = (baseUrl: string, options: LinkLoadOptions) => {
  const result: LinkLoadResult = {
    sent: 0,
    ok: 0,
    typed503: 0,
    other: [],
    maxLatencyMs: 0,
    acks: [],
    acknowledged: new Set(),
    lists: []
  }
  const deadline = Date.now() + options.maxDurationMs
  let stopped = false
  const running = () => !stopped && Date.now() < deadline

  const send = async (kind: string, url: string, init: RequestInit) => {
    result.sent++
    const startedAt = Date.now()
    const settle = (status: number, outcome: "ok" | "unavailable" | "other", detail = "") => {
      const answeredAt = Date.now()
      result.maxLatencyMs = Math.max(result.maxLatencyMs, answeredAt - startedAt)
      if (outcome === "ok") result.ok++
      else if (outcome === "unavailable") result.typed503++
      else result.other.push(`${kind} ${status} ${detail}`.trim())
      return { startedAt, answeredAt, status, outcome }
    }
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(PLATFORM_LIMIT_MS) })
      const text = await response.text()
      if (response.status === 200 || response.status === 201) return { ...settle(response.status, "ok"), text }
      if (isTyped503(response.status, response, text)) return { ...settle(503, "unavailable"), text }
      return { ...settle(response.status, "other", text.slice(0, 200)), text }
    } catch (error) {
      return { ...settle(0, "other", `${(error as Error).name}: ${(error as Error).message}`), text: "" }
    }
  }

  const writer = async () => {
    for (let seq = 0; running(); seq++) {
      const reference = `${options.prefix}-${seq}`
      for (let attempt = 0; attempt < 5; attempt++) {
        const answer = await send("post", `${baseUrl}/purchase-orders`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": reference },
          body: JSON.stringify({ reference, totalCents: 100 + seq })
        })
        if (answer.outcome === "ok") {
          result.acks.push({ seq: result.acks.length, reference, at: answer.answeredAt })
          result.acknowledged.add(reference)
        }
        if (answer.outcome !== "unavailable" || !running()) break
        await sleep(200)
      }
      await sleep(options.writePauseMs)
    }
  }

  const reader = async () => {
    while (running()) {
      const answer = await send("list", `${baseUrl}/purchase-orders?limit=${options.pageSize}`, { method: "GET" })
      let references: ReadonlyArray<string> = []
      if (answer.outcome === "ok") {
        references = (JSON.parse(answer.text) as { items: ReadonlyArray<{ reference: string }> }).items.map((item) =>
          item.reference
        )
      }
      result.lists.push({ sentAt: answer.startedAt, answeredAt: answer.answeredAt, status: answer.status, references })
      await sleep(options.readPauseMs)
    }
  }

  const done = Promise.all([writer(), ...Array.from({ length: options.readers }, reader)]).then(() => result)
  return {
    result,
    done,
    stop: () => {
      stopped = true
      return done
    }
  }
}

export interface StaleRead {
  readonly sentAt: number
  /** orders acknowledged more than the cutoff before the read that its page lacks */
  readonly missing: number
  /** how long before the read the oldest of them was acknowledged */
  readonly oldestMs: number
}

/**
 * The list reads that missed an order acknowledged more than `cutoffMs`
 * before they were sent. The page is newest first and the orders were
 * written one after the other, so a page that saw the newest such order (or
 * anything newer) saw them all; one that did not was read from an older
 * snapshot and misses every order after the newest it holds.
 */
export const staleReads = (acks: ReadonlyArray<Ack>, lists: ReadonlyArray<ListRead>, cutoffMs: number) => {
  const seqOf = new Map(acks.map((ack) => [ack.reference, ack.seq]))
  const stale: Array<StaleRead> = []
  let judged = 0
  for (const list of lists) {
    if (list.status !== 200) continue
    let due = -1
    for (const ack of acks) if (ack.at < list.sentAt - cutoffMs) due = ack.seq
    if (due < 0) continue
    judged++
    const newest = Math.max(-1, ...list.references.map((reference) => seqOf.get(reference) ?? -1))
    if (newest < due) stale.push({ sentAt: list.sentAt, missing: due - newest, oldestMs: list.sentAt - acks[newest + 1]!.at })
  }
  return { judged, stale }
}

/**
 * The value of the sample `name{labels}` in a Prometheus text exposition,
 * `+Inf` included (which `Number` reads as NaN); undefined when absent.
 */
export const sampleValue = (text: string, name: string, labels: Readonly<Record<string, string>>) => {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (match === null || match[1] !== name) continue
    const found: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[key!] = value!
    if (!Object.entries(labels).every(([key, value]) => found[key] === value)) continue
    const raw = match[3]!
    return raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw)
  }
  return undefined
}
