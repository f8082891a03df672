import { signatureHeaders } from '../../store/webhook-signature.ts'
import type { OutboundUrlPolicy } from '../../config/outbound-url-policy.ts'
import type { FlowAction } from './flow-action.ts'
import type { Call } from '../../store/calls.ts'
import type { FlowVariables } from './variables.ts'

/**
 * The client side of webhook apps (Telefon's `url`, jambonz's model): the
 * engine POSTs (or GETs) the call's details and the flow's variables to the
 * app, signed the Standard Webhooks way with the account's signing secret,
 * and runs the verbs the app answers with. Also the plain HTTP request of
 * `webhook_send`.
 */

/** A webhook app that failed: unreachable, too slow, not 2xx, or verbs that do not check. The call ends with `app-error`. */
/** What an app request tells the app: the call, the run and its variables (a verb's context has all three). */
export interface AppRequestContext {
  readonly call: Call
  readonly runId: string
  readonly vars: FlowVariables
}

export class FlowAppError extends Error {
  override readonly name = 'FlowAppError'
}

export interface WebhookAppOptions {
  /** Checks and connects tenants' URLs (config/outbound-url-policy.ts). */
  urlPolicy: OutboundUrlPolicy
  /** The account's signing secret (whsec_…: store.signingSecrets.secret). */
  signingSecret: (accountId: string) => Promise<string>
  /** How long an app may take to answer (APP_TIMEOUT_MS). */
  timeoutMs: number
  /** Checks an app's answer (call/flow/verb-catalog.ts checkActions), injected to keep this module free of the catalog. */
  checkActions: (input: unknown) => { ok: true; actions: FlowAction[] } | { ok: false; problems: string[] }
}

/** At most this much of an app's answer is read. */
const MAX_ANSWER_BYTES = 1 << 20

export class WebhookApp {
  constructor(private readonly o: WebhookAppOptions) {}

  /** The body every app request carries: who is calling whom, the run and its variables. */
  payload(ctx: AppRequestContext, event: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const c = ctx.call
    return {
      event,
      call: { id: c.id, accountId: c.accountId, direction: c.direction, status: c.status, from: c.from, to: c.to, numberId: c.numberId, agentId: c.agentId, answeredAt: c.answeredAt },
      activeflowId: ctx.runId,
      variables: ctx.vars.toJSON(),
      ...extra,
    }
  }

  private async request(accountId: string, url: string, method: string, body: string | null, contentType: string): Promise<{ status: number; body: string }> {
    try {
      await this.o.urlPolicy.check(url)
    } catch (err) {
      throw new FlowAppError(`${url} is not allowed: ${(err as Error).message}`)
    }
    // A GET signs its full URL, as agent tools do (store/webhook-signature.ts).
    const headers: Record<string, string> = { 'user-agent': 'callplane-flow', accept: 'application/json', ...signatureHeaders(await this.o.signingSecret(accountId), body ?? url) }
    if (body !== null) headers['content-type'] = contentType
    let res: Awaited<ReturnType<OutboundUrlPolicy['fetch']>>
    try {
      res = await this.o.urlPolicy.fetch(url, { method, headers, ...(body !== null ? { body } : {}), signal: AbortSignal.timeout(this.o.timeoutMs), redirect: 'error' })
    } catch (err) {
      const e = err as Error
      throw new FlowAppError(e.name === 'TimeoutError' || e.name === 'AbortError' ? `${url} did not answer within ${this.o.timeoutMs} ms` : `${url} could not be reached: ${e.message}`)
    }
    const text = await readCapped(res, MAX_ANSWER_BYTES)
    return { status: res.status, body: text }
  }

  /**
   * Asks an app for verbs and checks them. POST sends the payload as JSON;
   * GET puts `event`, the call id and the variables in the query string.
   * The answer is a JSON array of actions, or `{ "actions": [...] }`.
   */
  async fetchActions(ctx: AppRequestContext, req: { url: string; method: 'POST' | 'GET'; event: string; actionId?: string; data?: Record<string, unknown> }): Promise<FlowAction[]> {
    const payload = this.payload(ctx, req.event, { ...(req.actionId ? { actionId: req.actionId } : {}), ...(req.data ? { data: req.data } : {}) })
    let url = req.url
    let body: string | null = JSON.stringify(payload)
    if (req.method === 'GET') {
      const u = new URL(req.url)
      u.searchParams.set('event', req.event)
      u.searchParams.set('callId', ctx.call.id)
      u.searchParams.set('from', ctx.call.from)
      u.searchParams.set('to', ctx.call.to)
      for (const [k, v] of Object.entries(ctx.vars.toJSON())) u.searchParams.set(k, v)
      if (req.data) for (const [k, v] of Object.entries(req.data)) u.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v))
      url = u.toString()
      body = null
    }
    const r = await this.request(ctx.call.accountId, url, req.method, body, 'application/json')
    if (r.status < 200 || r.status >= 300) throw new FlowAppError(`${req.url} answered ${r.status}`)
    let parsed: unknown
    try {
      parsed = r.body.trim() === '' ? [] : JSON.parse(r.body)
    } catch {
      throw new FlowAppError(`${req.url} answered with something that is not JSON`)
    }
    // NUL and lone surrogates could not be stored with the run (jsonb) nor spoken: refused like any invalid answer.
    // JSON.stringify writes exactly those as \u escapes (well-formed pairs stay raw).
    if (/\\u0000|\\ud[89a-f][0-9a-f]{2}/i.test(JSON.stringify(parsed))) {
      throw new FlowAppError(`${req.url} answered text with a NUL character or a lone surrogate`)
    }
    const list = Array.isArray(parsed) ? parsed : parsed && typeof parsed === 'object' && Array.isArray((parsed as { actions?: unknown }).actions) ? (parsed as { actions: unknown[] }).actions : null
    if (!list) throw new FlowAppError(`${req.url} answered JSON that is neither an action list nor { "actions": [...] }`)
    const checked = this.o.checkActions(list)
    if (!checked.ok) throw new FlowAppError(`${req.url} answered invalid verbs: ${checked.problems.slice(0, 3).join('; ')}`)
    return checked.actions
  }

  /** webhook_send: one request; the body defaults to the call and variables as JSON. */
  async send(ctx: AppRequestContext, req: { url: string; method: 'POST' | 'GET' | 'PUT' | 'DELETE'; contentType: string; body?: string }): Promise<{ status: number; body: string }> {
    const body = req.method === 'GET' || req.method === 'DELETE' ? null : req.body ?? JSON.stringify(this.payload(ctx, 'webhook_send'))
    return this.request(ctx.call.accountId, req.url, req.method, body, req.contentType)
  }
}

async function readCapped(res: { body: unknown }, max: number): Promise<string> {
  if (!res.body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength
    if (size > max) throw new FlowAppError(`the answer is larger than ${max} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
