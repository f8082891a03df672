/**
 * Component health as /health reports it. Each part of the engine registers a
 * probe; /health answers 200 only when every probe is up (the Fonella
 * "SIP bridge health" contract: 200 on full green, 503 when any probe fails).
 */
export interface ComponentStatus {
  status: 'up' | 'down'
  /** Where it listens, what it is connected to, or why it is down. */
  detail?: Record<string, unknown>
}

export type HealthProbe = () => ComponentStatus | Promise<ComponentStatus>

export class HealthRegistry {
  private readonly probes = new Map<string, HealthProbe>()

  register(component: string, probe: HealthProbe): void {
    this.probes.set(component, probe)
  }

  async check(): Promise<{ healthy: boolean; components: Record<string, ComponentStatus> }> {
    const components: Record<string, ComponentStatus> = {}
    await Promise.all([...this.probes].map(async ([name, probe]) => {
      try {
        components[name] = await probe()
      } catch (err) {
        components[name] = { status: 'down', detail: { error: (err as Error).message } }
      }
    }))
    return { healthy: Object.values(components).every((c) => c.status === 'up'), components }
  }
}
