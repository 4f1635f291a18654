-- Decisions on AI-plan steps that wait for approval are audited too (adapters.audit):
-- 'approved' and 'rejected' join 'allowed' and 'denied'. Idempotent: the CHECK that
-- 0031 declared inline (PostgreSQL names it audit_log_decision_check) is replaced.
--
-- NOT VALID: every existing row passed the narrower check, so re-checking them would
-- only scan the whole table while audit writes (and the calls waiting for them) are
-- locked out. New and updated rows are checked all the same.
ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_decision_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_decision_check
    CHECK (decision IN ('allowed', 'denied', 'approved', 'rejected')) NOT VALID;
