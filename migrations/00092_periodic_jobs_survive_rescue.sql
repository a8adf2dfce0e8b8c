-- +goose Up
-- A periodic job (destination_probe, fhir_pull_schedule, wearable_poll) whose
-- worker is killed mid-run is taken back by River's rescuer. With
-- max_attempts 1 the rescuer discarded it, so a worker crash that hit one
-- opened a dead letter an operator could do nothing about (found by the
-- reduced crash suite: `destination_probe retries_exhausted`). Three attempts
-- let the rescued job run again, like maintenance. Each of them is safe to
-- repeat: it reads state and enqueues what is due.
UPDATE switchboard.job_kinds SET max_attempts = 3
 WHERE kind IN ('destination_probe', 'fhir_pull_schedule', 'wearable_poll');

-- +goose Down
UPDATE switchboard.job_kinds SET max_attempts = 1
 WHERE kind IN ('destination_probe', 'fhir_pull_schedule', 'wearable_poll');
