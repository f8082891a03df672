-- The call a campaign attempt placed, by its metadata (CampaigncallRepository.findPlacedCall: a
-- re-run after its node died looks for it): an index on the one key, only over calls that have it.
CREATE INDEX IF NOT EXISTS calls_campaigncall ON calls ((metadata->>'campaigncallId')) WHERE metadata ? 'campaigncallId';
