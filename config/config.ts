import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { hostname } from 'node:os'
import { parse as parseYaml } from 'yaml'

/**
 * The one typed configuration object. Built from defaults, then the YAML file
 * named by CONFIG_FILE (if any), then environment variables: the environment
 * wins, so a container can override one value of a baked-in file.
 */
export interface Config {
  sipHost: string
  sipPort: number
  sipExternalAddress: string | undefined
  /** Per-source limits of the embedded SIP server (new out-of-dialog requests per second; 0 = off). */
  sipInviteRatePerSource: number
  sipRequestRatePerSource: number
  sipRateBurstSec: number
  httpHost: string
  httpPort: number
  rtpPortMin: number
  rtpPortMax: number
  mediaWorkers: number
  dataDir: string
  databaseUrl: string | undefined
  drachtioUrl: string | undefined
  drachtioPort: number
  drachtioSecret: string
  rtpengineNg: string | undefined
  bootstrapApiKey: string | undefined
  secretsKey: string | undefined
  logLevel: LogLevel
  /** Seconds the drain on SIGTERM waits for BYEs and the store before exiting. */
  shutdownTimeoutSec: number
  /** Delays (ms) before each retry of a failed webhook delivery; the first attempt is immediate. */
  webhookRetrySchedule: number[]
  /** A webhook failing continuously for this long (ms) is disabled. */
  webhookDisableAfterMs: number
  /** This node's name in call records (`nodeId`), registrations and trunk leases; stable across restarts. */
  nodeId: string
  /** How long a node waits for the node that holds a call to answer an action relayed to it. */
  callRelayTimeoutMs: number
  /** The durable job scheduler: how long a claimed job is held without renewal, and the longest sleep between looks for due jobs. */
  jobLeaseMs: number
  jobPollMs: number
  /** How long a webhook app (a number's or call's `url`, a flow's fetch) may take to answer. */
  appTimeoutMs: number
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** A bad value: the message is one line naming the variable and what is allowed. */
export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`)
    this.name = 'ConfigError'
  }
}

type Source = Record<string, string | undefined>

interface VarSpec<T> {
  env: string
  default: T
  parse: (raw: string, name: string) => T
  doc: string
}

const port = (raw: string, name: string): number => {
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a port number 1-65535, got '${raw}'`)
  const n = Number(raw)
  if (n < 1 || n > 65535) throw new ConfigError(name, `must be a port number 1-65535, got '${raw}'`)
  return n
}
const portOrZero = (raw: string, name: string): number => (raw === '0' ? 0 : port(raw, name))
const positiveInt = (max: number) => (raw: string, name: string): number => {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new ConfigError(name, `must be an integer 1-${max}, got '${raw}'`)
  }
  return Number(raw)
}
const nonNegativeInt = (max: number) => (raw: string, name: string): number => {
  if (!/^\d+$/.test(raw) || Number(raw) > max) throw new ConfigError(name, `must be an integer 0-${max}, got '${raw}'`)
  return Number(raw)
}
const host = (raw: string, name: string): string => {
  // A bind address: an IP literal or a resolvable-looking hostname.
  if (isIP(raw) || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(raw)) return raw
  throw new ConfigError(name, `must be an IP address or hostname, got '${raw}'`)
}
const optional = <T>(p: (raw: string, name: string) => T) => (raw: string, name: string): T | undefined =>
  raw === '' ? undefined : p(raw, name)
const text = (raw: string): string => raw
const url = (schemes: string[]) => (raw: string, name: string): string => {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new ConfigError(name, `must be a URL (${schemes.join(', ')}), got '${raw}'`)
  }
  if (!schemes.includes(u.protocol.replace(/:$/, ''))) {
    throw new ConfigError(name, `must use scheme ${schemes.join(' or ')}, got '${u.protocol}'`)
  }
  return raw
}
/** host:port, as rtpengine's ng address or drachtio's control address. */
const hostPort = (raw: string, name: string): string => {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d+)$/.exec(raw)
  if (!m) throw new ConfigError(name, `must be host:port, got '${raw}'`)
  port(m[2]!, name)
  return raw
}
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
/** `250ms`, `5s`, `30m`, `2h`, `5d` (or `0`) → milliseconds. */
const duration = (raw: string, name: string): number => {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(raw)
  if (raw === '0') return 0
  if (!m) throw new ConfigError(name, `must be a duration like 500ms, 5s, 30m, 2h or 5d, got '${raw}'`)
  return Number(m[1]) * DURATION_UNITS[m[2]!]!
}
const positiveDuration = (raw: string, name: string): number => {
  const ms = duration(raw, name)
  if (ms <= 0) throw new ConfigError(name, `must be a positive duration, got '${raw}'`)
  return ms
}
/** Comma-separated durations, at least one, at most 50. */
const durationList = (raw: string, name: string): number[] => {
  const parts = raw.split(',').map((p) => p.trim())
  if (parts.length > 50) throw new ConfigError(name, `must list at most 50 durations, got ${parts.length}`)
  return parts.map((p) => duration(p, name))
}
/** A node's name: what call records and registrations carry (any printable text, no spaces). */
const nodeName = (raw: string, name: string): string => {
  if (/^[\x21-\x7e]{1,200}$/.test(raw)) return raw
  throw new ConfigError(name, `must be 1-200 printable characters without spaces, got '${raw}'`)
}
const level = (raw: string, name: string): LogLevel => {
  if ((LOG_LEVELS as readonly string[]).includes(raw)) return raw as LogLevel
  throw new ConfigError(name, `must be one of ${LOG_LEVELS.join(', ')}, got '${raw}'`)
}

/** Every variable, its default and its meaning. README's reference table mirrors this. */
export const CONFIG_VARS = {
  sipHost: { env: 'SIP_HOST', default: '0.0.0.0', parse: host, doc: 'Address the SIP server binds (UDP and TCP).' },
  sipPort: { env: 'SIP_PORT', default: 5060, parse: port, doc: 'SIP port, UDP and TCP.' },
  sipExternalAddress: { env: 'SIP_EXTERNAL_ADDRESS', default: undefined, parse: optional(host), doc: 'Public address advertised in Via/Contact/SDP when behind NAT.' },
  sipInviteRatePerSource: { env: 'SIP_INVITE_RATE_PER_SOURCE', default: 20, parse: nonNegativeInt(100_000), doc: 'New INVITEs per second accepted from one source IP by the embedded SIP server (a call answering a digest challenge sends two; Kamailio pike defaults to 15 requests/s of any kind); the excess is dropped before any transaction exists and counted in sip_server_rate_limited_total. A source also has at most 16 INVITEs waiting on the application at once, so a flood cannot queue the calls of other sources behind its own. 0 turns both off. Loopback is not exempt.' },
  sipRequestRatePerSource: { env: 'SIP_REQUEST_RATE_PER_SOURCE', default: 200, parse: nonNegativeInt(100_000), doc: 'Other new out-of-dialog requests per second (REGISTER, OPTIONS, MESSAGE, SUBSCRIBE, stray in-dialog requests answered 481) accepted from one source IP; same handling. 0 turns it off.' },
  sipRateBurstSec: { env: 'SIP_RATE_BURST', default: 2, parse: positiveInt(60), doc: 'Burst allowance of both per-source limits, in seconds of the sustained rate (a PBX that restarts may send that much at once).' },
  httpHost: { env: 'HTTP_HOST', default: '0.0.0.0', parse: host, doc: 'Address the control API binds.' },
  httpPort: { env: 'HTTP_PORT', default: 8080, parse: portOrZero, doc: 'Control API port (REST, WebSocket, /health, /metrics).' },
  rtpPortMin: { env: 'RTP_PORT_MIN', default: 40000, parse: port, doc: 'Lowest RTP port (RTCP uses the next odd port).' },
  rtpPortMax: { env: 'RTP_PORT_MAX', default: 49999, parse: port, doc: 'Highest RTP port.' },
  mediaWorkers: { env: 'MEDIA_WORKERS', default: 0, parse: (raw: string, name: string) => (raw === '0' ? 0 : positiveInt(64)(raw, name)), doc: 'Worker threads for call media. 0: media, agents and media actions run on the main thread. N > 0: each worker runs a whole media plane (RTP sessions, agent runtimes, media actions; call/plane/worker-planes.ts) on its share of the RTP ports, and calls are spread over them; calls on different workers still bridge and share conferences (media/frame-link.ts).' },
  dataDir: { env: 'DATA_DIR', default: './data', parse: text, doc: 'Directory for the embedded database and recordings.' },
  databaseUrl: { env: 'DATABASE_URL', default: undefined, parse: optional(url(['postgres', 'postgresql'])), doc: 'PostgreSQL URL; unset runs embedded PGlite under DATA_DIR.' },
  drachtioUrl: { env: 'DRACHTIO_URL', default: undefined, parse: optional(hostPort), doc: 'host:port of an external drachtio-server; unset runs the embedded SIP server.' },
  drachtioPort: { env: 'DRACHTIO_PORT', default: 9022, parse: portOrZero, doc: "Embedded SIP server's control socket port (127.0.0.1)." },
  drachtioSecret: { env: 'DRACHTIO_SECRET', default: 'cymru', parse: text, doc: 'Shared secret of the drachtio control socket.' },
  rtpengineNg: { env: 'RTPENGINE_NG', default: undefined, parse: optional(hostPort), doc: 'host:port of rtpengine\'s ng control; unset terminates media directly.' },
  bootstrapApiKey: { env: 'BOOTSTRAP_API_KEY', default: undefined, parse: optional(text), doc: 'Admin API key created on first start; otherwise one is generated and printed once.' },
  secretsKey: { env: 'SECRETS_KEY', default: undefined, parse: optional(text), doc: 'Key that encrypts stored secrets (outbound SIP passwords, webhook secrets); unset → generated once into DATA_DIR/secrets.key.' },
  logLevel: { env: 'LOG_LEVEL', default: 'info', parse: level, doc: `Log level: ${LOG_LEVELS.join(', ')}.` },
  shutdownTimeoutSec: { env: 'SHUTDOWN_TIMEOUT', default: 10, parse: positiveInt(600), doc: 'Seconds a SIGTERM drain may take before exiting anyway.' },
  // Svix's schedule (https://docs.svix.com/retries): immediately, then these delays.
  webhookRetrySchedule: { env: 'WEBHOOK_RETRY_SCHEDULE', default: [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000], parse: durationList, doc: 'Delays before each retry of a failed webhook delivery (the first attempt is immediate), comma-separated. While the endpoint keeps failing, the last delay repeats.' },
  appTimeoutMs: { env: 'APP_TIMEOUT', default: 5000, parse: positiveDuration, doc: 'How long a webhook app (url on a number or call, a flow\'s fetch, a gather\'s action_url) may take to answer before the call ends with app-error.' },
  webhookDisableAfterMs: { env: 'WEBHOOK_DISABLE_AFTER', default: 432_000_000, parse: positiveDuration, doc: 'A webhook whose every attempt has failed for this long is disabled; its events keep being queued and are delivered when it is re-enabled.' },
  nodeId: { env: 'NODE_ID', default: hostname(), parse: nodeName, doc: 'This node\'s name, stable across restarts: call records carry it (`nodeId`), so an action on a call reaching another node is relayed to this one, and a restart finishes the calls it left live. Every node of a cluster needs its own. Default: the hostname.' },
  jobLeaseMs: { env: 'JOB_LEASE', default: 30_000, parse: positiveDuration, doc: 'Scheduled work (campaign dials, scheduled calls, sequence steps) is claimed by one node with a lease it renews while the work runs; a node that dies hands its jobs to another after this long.' },
  jobPollMs: { env: 'JOB_POLL', default: 1000, parse: positiveDuration, doc: 'The longest a node waits before looking again for due jobs (jobs due sooner wake it earlier; another node\'s new jobs and expired leases are seen within this).' },
  callRelayTimeoutMs: { env: 'CALL_RELAY_TIMEOUT', default: 5000, parse: positiveDuration, doc: 'With several nodes on one PostgreSQL: how long a node waits for word from the node that holds a call before answering an action relayed there with 503 (the node may be down). A long action keeps the wait alive while it runs.' },
} satisfies { [K in keyof Config]: VarSpec<Config[K]> }

/** Reads CONFIG_FILE (YAML). Keys may be the env names (SIP_PORT) or the camelCase names (sipPort). */
function readYaml(path: string): Source {
  let doc: unknown
  try {
    doc = parseYaml(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new ConfigError('CONFIG_FILE', `cannot read YAML '${path}': ${(err as Error).message.split('\n')[0]}`)
  }
  if (doc == null) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('CONFIG_FILE', `'${path}' must be a YAML mapping`)
  const out: Source = {}
  const byCamel = new Map(Object.entries(CONFIG_VARS).map(([k, v]) => [k, v.env]))
  const envNames = new Set(byCamel.values())
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const env = envNames.has(k) ? k : byCamel.get(k)
    if (!env) throw new ConfigError('CONFIG_FILE', `unknown key '${k}' in '${path}'`)
    if (v !== null && typeof v === 'object') throw new ConfigError(env, `must be a scalar in '${path}'`)
    out[env] = v == null ? '' : String(v)
  }
  return out
}

export function loadConfig(env: Source = process.env): Config {
  const fileValues = env.CONFIG_FILE ? readYaml(env.CONFIG_FILE) : {}
  const cfg: Record<string, unknown> = {}
  for (const [key, spec] of Object.entries(CONFIG_VARS) as [keyof Config, VarSpec<unknown>][]) {
    const raw = env[spec.env] ?? fileValues[spec.env]
    cfg[key] = raw === undefined ? spec.default : spec.parse(raw.trim(), spec.env)
  }
  const c = cfg as unknown as Config
  if (c.rtpPortMin > c.rtpPortMax) {
    throw new ConfigError('RTP_PORT_MIN', `must not exceed RTP_PORT_MAX (${c.rtpPortMin} > ${c.rtpPortMax})`)
  }
  if (c.rtpPortMax - c.rtpPortMin < 3) {
    throw new ConfigError('RTP_PORT_MAX', `the RTP range needs at least 4 ports (RTP+RTCP pairs), got ${c.rtpPortMin}-${c.rtpPortMax}`)
  }
  return c
}
