import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, ConfigError } from '../../config/config.ts'

t.test('defaults describe the embedded single-node mode', async (t) => {
  const c = loadConfig({})
  t.equal(c.sipPort, 5060)
  t.equal(c.httpPort, 8080)
  t.equal(c.rtpPortMin, 40000)
  t.equal(c.rtpPortMax, 49999)
  t.equal(c.drachtioPort, 9022)
  t.equal(c.dataDir, './data')
  t.equal(c.databaseUrl, undefined, 'no DATABASE_URL → embedded PGlite')
  t.equal(c.drachtioUrl, undefined, 'no DRACHTIO_URL → embedded SIP server')
  t.equal(c.rtpengineNg, undefined)
  t.equal(c.logLevel, 'info')
})

t.test('environment variables are parsed and typed', async (t) => {
  const c = loadConfig({
    SIP_PORT: '5080', HTTP_PORT: '9000', RTP_PORT_MIN: '30000', RTP_PORT_MAX: '30100', MEDIA_WORKERS: '2',
    DATABASE_URL: 'postgres://u:p@db:5432/x', DRACHTIO_URL: 'drachtio:9022', RTPENGINE_NG: '127.0.0.1:22222',
    SIP_EXTERNAL_ADDRESS: '203.0.113.7', LOG_LEVEL: 'debug',
  })
  t.equal(c.sipPort, 5080)
  t.equal(c.httpPort, 9000)
  t.equal(c.mediaWorkers, 2)
  t.equal(c.databaseUrl, 'postgres://u:p@db:5432/x')
  t.equal(c.drachtioUrl, 'drachtio:9022')
  t.equal(c.rtpengineNg, '127.0.0.1:22222')
  t.equal(c.sipExternalAddress, '203.0.113.7')
  t.equal(c.logLevel, 'debug')
})

t.test('a bad value names the variable and what is allowed', async (t) => {
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ SIP_PORT: 'abc' }, 'SIP_PORT', /port number 1-65535.*'abc'/],
    [{ SIP_PORT: '70000' }, 'SIP_PORT', /1-65535/],
    [{ RTP_PORT_MIN: '5000', RTP_PORT_MAX: '4000' }, 'RTP_PORT_MIN', /must not exceed RTP_PORT_MAX/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of fatal, error/],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL', /postgres/],
    [{ DRACHTIO_URL: 'nohostport' }, 'DRACHTIO_URL', /host:port/],
    [{ MEDIA_WORKERS: '-1' }, 'MEDIA_WORKERS', /integer/],
    [{ SIP_HOST: 'bad host!' }, 'SIP_HOST', /IP address or hostname/],
  ]
  for (const [env, variable, msg] of cases) {
    try {
      loadConfig(env)
      t.fail(`${JSON.stringify(env)} should be rejected`)
    } catch (err) {
      t.type(err, ConfigError)
      t.equal((err as ConfigError).variable, variable)
      t.match((err as Error).message, new RegExp(`^${variable}: `))
      t.match((err as Error).message, msg)
      t.notMatch((err as Error).message, /\n/, 'one line')
    }
  }
})

t.test('CONFIG_FILE overlays defaults; the environment wins over the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'))
  const file = join(dir, 'callplane.yaml')
  writeFileSync(file, 'SIP_PORT: 5070\nhttpPort: 8181\nLOG_LEVEL: warn\n')
  const c = loadConfig({ CONFIG_FILE: file, LOG_LEVEL: 'error' })
  t.equal(c.sipPort, 5070, 'env-style key from file')
  t.equal(c.httpPort, 8181, 'camelCase key from file')
  t.equal(c.logLevel, 'error', 'environment overrides the file')

  writeFileSync(file, 'SIP_PORT: nope\n')
  t.equal(rejection({ CONFIG_FILE: file })?.variable, 'SIP_PORT')
  writeFileSync(file, 'NOT_A_SETTING: 1\n')
  const unknown = rejection({ CONFIG_FILE: file })
  t.equal(unknown?.variable, 'CONFIG_FILE')
  t.match(unknown?.message, /unknown key 'NOT_A_SETTING'/)
  t.equal(rejection({ CONFIG_FILE: join(dir, 'missing.yaml') })?.variable, 'CONFIG_FILE')
})

function rejection(env: Record<string, string>): ConfigError | undefined {
  try {
    loadConfig(env)
    return undefined
  } catch (err) {
    return err instanceof ConfigError ? err : undefined
  }
}

t.test('webhook retry schedule and disable window: Svix defaults, durations with units', async (t) => {
  const d = loadConfig({})
  t.same(d.webhookRetrySchedule, [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000], '5s,5m,30m,2h,5h,10h,10h')
  t.equal(d.webhookDisableAfterMs, 5 * 86_400_000, '5 days')
  const c = loadConfig({ WEBHOOK_RETRY_SCHEDULE: '250ms, 2s,1m,1h', WEBHOOK_DISABLE_AFTER: '2d' })
  t.same(c.webhookRetrySchedule, [250, 2000, 60_000, 3_600_000])
  t.equal(c.webhookDisableAfterMs, 2 * 86_400_000)
  for (const [env, re] of [
    [{ WEBHOOK_RETRY_SCHEDULE: '5x' }, /WEBHOOK_RETRY_SCHEDULE: must be a duration like .*'5x'/],
    [{ WEBHOOK_RETRY_SCHEDULE: '5s,,1m' }, /WEBHOOK_RETRY_SCHEDULE: must be a duration/],
    [{ WEBHOOK_DISABLE_AFTER: '0' }, /WEBHOOK_DISABLE_AFTER: must be a positive duration/],
    [{ WEBHOOK_DISABLE_AFTER: '5 days' }, /WEBHOOK_DISABLE_AFTER: must be a duration/],
  ] as Array<[Record<string, string>, RegExp]>) {
    t.throws(() => loadConfig(env), re)
    t.throws(() => loadConfig(env), ConfigError)
  }
})
