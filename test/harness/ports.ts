import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'

/**
 * A port free on both TCP and UDP at 127.0.0.1 (SIP listens on both). Asks the
 * kernel for an ephemeral TCP port, then checks UDP can bind it too.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer()
      srv.once('error', reject)
      srv.listen(0, host, () => {
        const addr = srv.address()
        const p = typeof addr === 'object' && addr ? addr.port : 0
        srv.close(() => resolve(p))
      })
    })
    const udpOk = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4')
      s.once('error', () => resolve(false))
      s.bind(port, host, () => s.close(() => resolve(true)))
    })
    if (udpOk) return port
  }
  throw new Error('no free port found')
}

/**
 * A range of `count` consecutive even-aligned UDP ports for RTP tests. Picks a
 * random window in a high range that tests do not otherwise use and checks each
 * port binds.
 */
export async function freeUdpRange(count: number, host = '127.0.0.1'): Promise<{ min: number; max: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const min = 20000 + 2 * Math.floor(Math.random() * 5000)
    const max = min + count - 1
    let ok = true
    for (let p = min; p <= max && ok; p++) {
      ok = await new Promise<boolean>((resolve) => {
        const s = createSocket('udp4')
        s.once('error', () => resolve(false))
        s.bind(p, host, () => s.close(() => resolve(true)))
      })
    }
    if (ok) return { min, max }
  }
  throw new Error(`no free UDP range of ${count} ports`)
}
