/**
 * Prometheus metrics for the SIP server. Registered on the caller's Registry
 * (or a private one), never the global default, so several servers can run in
 * one process (tests) without name clashes.
 */
import { Counter, Gauge, Registry } from 'prom-client'

export interface SipMetrics {
  registry: Registry
  transactions: Counter<'method' | 'class' | 'direction'>
  retransmissions: Counter<'kind' | 'method'>
  parseErrors: Counter<string>
  dropped: Counter<'reason'>
  rateLimited: Counter<'method'>
  dialogs: Gauge<string>
  apps: Gauge<string>
}

export function createMetrics(registry: Registry | undefined, collect: { dialogs: () => number; apps: () => number }): SipMetrics {
  const reg = registry ?? new Registry()
  const get = <T>(name: string, make: () => T): T => (reg.getSingleMetric(name) as T | undefined) ?? make()
  return {
    registry: reg,
    transactions: get('sip_server_transactions_total', () => new Counter({
      name: 'sip_server_transactions_total', help: 'Completed SIP transactions by method and final response class',
      labelNames: ['method', 'class', 'direction'] as const, registers: [reg],
    })),
    retransmissions: get('sip_server_retransmissions_total', () => new Counter({
      name: 'sip_server_retransmissions_total', help: 'SIP retransmissions sent (requests) or triggered (responses)',
      labelNames: ['kind', 'method'] as const, registers: [reg],
    })),
    parseErrors: get('sip_server_parse_errors_total', () => new Counter({
      name: 'sip_server_parse_errors_total', help: 'Malformed SIP messages received', registers: [reg],
    })),
    dropped: get('sip_server_dropped_total', () => new Counter({
      name: 'sip_server_dropped_total', help: 'SIP messages dropped, by reason', labelNames: ['reason'] as const, registers: [reg],
    })),
    rateLimited: get('sip_server_rate_limited_total', () => new Counter({
      name: 'sip_server_rate_limited_total', help: 'New out-of-dialog requests dropped by the per-source rate limit, by method (INVITE, REGISTER, OPTIONS, other)',
      labelNames: ['method'] as const, registers: [reg],
    })),
    dialogs: get('sip_server_dialogs', () => new Gauge({
      name: 'sip_server_dialogs', help: 'Dialogs held by the SIP server', registers: [reg],
      collect() { this.set(collect.dialogs()) },
    })),
    apps: get('sip_server_connected_apps', () => new Gauge({
      name: 'sip_server_connected_apps', help: 'Authenticated drachtio applications', registers: [reg],
      collect() { this.set(collect.apps()) },
    })),
  }
}
