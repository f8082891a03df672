import type { Queryable } from './common.ts'
import type { SecretBox } from './secrets.ts'
import { generateSigningSecret } from './webhook-signature.ts'

/** An account's application signing secret, in clear (the API shows it to its account). */
export interface SigningSecret {
  secret: string
  createdAt: string
  /** The last rotation; null while the first secret is in use. */
  rotatedAt: string | null
}

interface Row { secret_sealed: string; created_at: Date; rotated_at: Date | null }

/**
 * One Standard Webhooks secret per account for the requests the engine makes
 * on the account's behalf outside /v1/webhooks: status callbacks and webhook
 * apps (`url` programs). Unlike a webhook's or a tool's secret it is readable
 * at any time (GET /v1/signing-secret), so it is created lazily on first use
 * rather than shown once at a create.
 */
export class SigningSecretRepository {
  constructor(private readonly db: Queryable, private readonly secrets: SecretBox) {}

  /** The account's secret, created on first call (concurrent first calls agree on one). */
  async get(accountId: string): Promise<SigningSecret> {
    const existing = await this.read(accountId)
    if (existing) return existing
    // Two first calls race: one insert wins, the other reads the winner's
    // row in a new statement (a new snapshot, so it sees the commit).
    const { rows } = await this.db.query<Row>(
      `INSERT INTO account_signing_secrets (account_id, secret_sealed) VALUES ($1, $2)
       ON CONFLICT (account_id) DO NOTHING RETURNING *`,
      [accountId, this.secrets.seal(generateSigningSecret())],
    )
    const row = rows[0] ? this.toSecret(rows[0]) : await this.read(accountId)
    if (!row) throw new Error(`signing secret of account ${accountId} vanished while it was created`)
    return row
  }

  /** The secret only, for signing (`store.signingSecrets.secret(accountId)`). */
  async secret(accountId: string): Promise<string> {
    return (await this.get(accountId)).secret
  }

  /**
   * A new secret replaces the old one at once: requests signed from now on
   * verify only with the new one (deliveries already queued are signed when
   * they are sent, so they use the new one too).
   */
  async rotate(accountId: string): Promise<SigningSecret> {
    const { rows } = await this.db.query<Row>(
      `INSERT INTO account_signing_secrets AS s (account_id, secret_sealed) VALUES ($1, $2)
       ON CONFLICT (account_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, rotated_at = now()
       RETURNING *`,
      [accountId, this.secrets.seal(generateSigningSecret())],
    )
    return this.toSecret(rows[0]!)
  }

  private async read(accountId: string): Promise<SigningSecret | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM account_signing_secrets WHERE account_id = $1', [accountId])
    return rows[0] ? this.toSecret(rows[0]) : null
  }

  private toSecret(r: Row): SigningSecret {
    return { secret: this.secrets.open(r.secret_sealed), createdAt: r.created_at.toISOString(), rotatedAt: r.rotated_at?.toISOString() ?? null }
  }
}
