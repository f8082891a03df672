import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * AES-256-GCM sealing for secrets the engine has to use again in clear
 * (a carrier's outbound SIP password, a webhook's signing secret). The key
 * comes from SECRETS_KEY, else a key file created once (mode 0600) in the data dir.
 */
export class SecretBox {
  private readonly key: Buffer
  constructor(keyMaterial: string | Buffer) {
    this.key = createHash('sha256').update(keyMaterial).digest()
  }

  static fromEnvOrFile(envKey: string | undefined, file: string): SecretBox {
    if (envKey) return new SecretBox(envKey)
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true })
      writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600 })
    }
    return new SecretBox(readFileSync(file, 'utf8').trim())
  }

  seal(plain: string): string {
    const iv = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', this.key, iv)
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()])
    return `v1.${iv.toString('base64url')}.${c.getAuthTag().toString('base64url')}.${body.toString('base64url')}`
  }

  open(sealed: string): string {
    const [v, iv, tag, body] = sealed.split('.')
    if (v !== 'v1' || !iv || !tag || body === undefined) throw new Error('unrecognised sealed secret')
    const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'))
    d.setAuthTag(Buffer.from(tag, 'base64url'))
    return Buffer.concat([d.update(Buffer.from(body, 'base64url')), d.final()]).toString('utf8')
  }
}

/** HA1 for SIP digest (RFC 2617 MD5, RFC 8760 SHA-256): H(username:realm:password). */
export function digestHa1(username: string, realm: string, password: string): { md5: string; sha256: string } {
  const s = `${username}:${realm}:${password}`
  return { md5: createHash('md5').update(s).digest('hex'), sha256: createHash('sha256').update(s).digest('hex') }
}
