import type { Call } from '../../store/calls.ts'

/**
 * Whether a call booked something (a sequence's `stop_on_booking`): its
 * transcript has a successful tool line that is the agent's `mark_booked`
 * built-in, or whose result is a JSON object with `booked: true` (a
 * tenant's booking tool answering `{"result": {"booked": true, ...}}`).
 * Tool lines read `name(arguments) → result` (agent/reply-generator.ts).
 */
export function bookedOn(call: Pick<Call, 'transcript'>): boolean {
  return call.transcript.some((e) => {
    if (e.role !== 'tool' || !e.tool?.ok) return false
    if (e.tool.name === 'mark_booked') return true
    const arrow = e.text.indexOf(' → ')
    if (arrow < 0) return false
    try {
      const result: unknown = JSON.parse(e.text.slice(arrow + 3))
      return typeof result === 'object' && result !== null && (result as { booked?: unknown }).booked === true
    } catch {
      return false
    }
  })
}
