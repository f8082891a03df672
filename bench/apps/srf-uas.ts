/**
 * The minimal drachtio-srf UAS the SIP call-rate bench drives (the "20-line
 * app" of issue 3): answers every INVITE with 200 + SDP and lets the caller
 * hang up. Runs in its own process so its CPU is measured apart from the
 * server's. Env: DRACHTIO_HOST, DRACHTIO_PORT, DRACHTIO_SECRET.
 */
import Srf from 'drachtio-srf'

const SDP = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
  'm=audio 40000 RTP/AVP 0 101', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=ptime:20', 'a=sendrecv', '',
].join('\r\n')

const srf = new Srf()
srf.on('connect', (err: Error | null) => {
  if (err) console.error(`connect failed: ${err.message}`)
  else console.log('srf-uas connected')
})
srf.on('error', (err: Error) => console.error(`srf error: ${err.message}`))
srf.invite((req, res) => {
  srf.createUAS(req, res, { localSdp: SDP }).catch((err: Error) => console.error(`createUAS: ${err.message}`))
})
srf.connect({ host: process.env.DRACHTIO_HOST ?? '127.0.0.1', port: Number(process.env.DRACHTIO_PORT ?? 9022), secret: process.env.DRACHTIO_SECRET ?? 'cymru' })
process.on('SIGTERM', () => { srf.disconnect(); process.exit(0) })
process.on('disconnect', () => process.exit(0))
