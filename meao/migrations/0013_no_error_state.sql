-- ETSI MEC 010-2 has no onboarding state ERROR: a failed package is CREATED again, its failure
-- kept in onboardingFailureDetails, so that its content can be uploaded again.
UPDATE app_packages SET onboarding_state = 'CREATED' WHERE onboarding_state = 'ERROR';
