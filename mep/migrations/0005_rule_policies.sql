-- What each application instance may change in its own rules through Mp1 (AppRulePolicy
-- JSON): granted DNS names and the envelope of its traffic rules; NULL: nothing.
ALTER TABLE app_instances ADD COLUMN rule_policy TEXT;
