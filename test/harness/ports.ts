import { createServer } from 'node:net'
import { createSocket } from 'node:dgram'

/**
 * A port free on both TCP and UDP at 127.0.0.1 (SIP listens on both).
 *
 * Picked at random from 10000–19999, below the kernel's ephemeral range
 * (32768–60999 here) and the RTP ranges of freeUdpRange (20000–29999). A port
 * the kernel handed out as ephemeral could be given again, between this check
 * and the real bind, to any process's outgoing socket (sipp, pg, fetch): seen
 * as sipp failing with EADDRINUSE under the parallel suite.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 10000 + Math.floor(Math.random() * 10000)
    const tcpOk = await new Promise<boolean>((resolve) => {
      const srv = createServer()
      srv.once('error', () => resolve(false))
      srv.listen(port, host, () => srv.close(() => resolve(true)))
    })
    if (!tcpOk) continue
    const udpOk = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4')
      s.once('error', () => resolve(false))
      s.bind(port, host, () => s.close(() => resolve(true)))
    })
    if (udpOk) return port
  }
  throw new Error('no free port found in 10000-19999')
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
