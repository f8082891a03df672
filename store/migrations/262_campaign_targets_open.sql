-- A campaign's targets not done yet: whether any is left (CampaignRepository.finished, after every
-- settled attempt) stops at the first one instead of walking the done ones.
CREATE INDEX IF NOT EXISTS campaign_targets_open ON campaign_targets(campaign_id) WHERE status <> 'done';
