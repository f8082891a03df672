-- The call a scheduled call's attempt or a sequence step placed, by its metadata: a re-run
-- after its node died between placing the call and noting it settles from that call instead
-- of dialling again (ScheduledCallRepository.findPlacedCall, SequenceRepository.findPlacedCall).
-- An index on the one key each, only over calls that have it.
CREATE INDEX IF NOT EXISTS calls_scheduled_call ON calls ((metadata->>'scheduled_call_id')) WHERE metadata ? 'scheduled_call_id';
CREATE INDEX IF NOT EXISTS calls_sequence_step_run ON calls ((metadata->>'sequence_step_run')) WHERE metadata ? 'sequence_step_run';
