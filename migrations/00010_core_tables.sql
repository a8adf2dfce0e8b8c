-- Switchboard's own tables for the outbox core and SMS: job kinds, messages
-- with their events and attempts, consent, the webhook inbox, inbound replies,
-- dead letters, events to the app and the audit log.

-- +goose Up

-- Per-kind defaults: the one source of truth for queue, priority and max
-- attempts. The SQL API inserts jobs from these rows and a Go test keeps each
-- kind's InsertOpts equal to them.
CREATE TABLE switchboard.job_kinds (
    kind         text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_]{0,126}$'),
    queue        text NOT NULL CHECK (char_length(queue) BETWEEN 1 AND 127),
    priority     smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 4),
    max_attempts smallint NOT NULL CHECK (max_attempts > 0),
    -- The domain record a job of this kind concerns: subject_type/args->>subject_arg.
    subject_type text,
    subject_arg  text,
    -- Whether switchboard.enqueue may insert this kind for an app.
    app_enqueue  boolean NOT NULL DEFAULT false,
    description  text NOT NULL
);

INSERT INTO switchboard.job_kinds (kind, queue, priority, max_attempts, subject_type, subject_arg, description) VALUES
    ('sms_send', 'sms', 2, 10, 'message', 'message_id', 'send one SMS through a provider'),
    ('webhook_process', 'inbound', 2, 10, 'inbound_webhook', 'webhook_id', 'apply one stored provider webhook');

CREATE TABLE switchboard.messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key     text NOT NULL UNIQUE,
    -- sha256 over the call's content, so a reused key is compared even after
    -- the body has been erased by retention.
    content_hash        bytea NOT NULL,
    to_e164             text NOT NULL,
    body                text,
    patient_ref         text,
    status              text NOT NULL DEFAULT 'queued' CHECK (status IN
        ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed',
         'blocked_opted_out', 'expired', 'cancelled')),
    provider            text,
    provider_message_id text,
    error_code          text,
    error_reason        text,
    segments            integer,
    not_before          timestamptz,
    not_after           timestamptz,
    job_id              bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    accepted_at         timestamptz,
    final_at            timestamptz,
    body_erased_at      timestamptz
);
CREATE UNIQUE INDEX messages_provider_message_id_idx
    ON switchboard.messages (provider, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX messages_open_idx ON switchboard.messages (created_at)
    WHERE status IN ('queued', 'sending', 'sent');

-- Every provider attempt, written before the request leaves (outcome NULL)
-- and completed after it: an operator can see exactly what happened.
CREATE TABLE switchboard.message_attempts (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id          bigint NOT NULL REFERENCES switchboard.messages (id),
    provider            text NOT NULL,
    job_id              bigint,
    job_attempt         integer,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    outcome             text CHECK (outcome IN
        ('accepted', 'not_sent', 'recipient_rejected', 'permanent', 'throttled',
         'ambiguous', 'reconciled_found', 'reconciled_absent')),
    provider_message_id text,
    http_status         integer,
    error_code          text
);
CREATE INDEX message_attempts_message_idx ON switchboard.message_attempts (message_id, id);

-- Every status report received from a provider, in arrival order.
CREATE TABLE switchboard.message_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      bigint NOT NULL REFERENCES switchboard.messages (id),
    provider        text NOT NULL,
    provider_status text NOT NULL,
    status          text NOT NULL,
    error_code      text,
    applied         boolean NOT NULL,
    webhook_id      bigint,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_events_message_idx ON switchboard.message_events (message_id, id);

CREATE TABLE switchboard.sms_consent (
    phone_e164 text PRIMARY KEY,
    opted_out  boolean NOT NULL,
    source     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The inbox: a verified webhook is stored here with its processing job in one
-- transaction, then answered.
CREATE TABLE switchboard.inbound_webhooks (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider          text NOT NULL,
    provider_event_id text NOT NULL,
    event_type        text NOT NULL,
    raw_body          bytea,
    state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processed', 'ignored')),
    received_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz,
    body_erased_at    timestamptz,
    UNIQUE (provider, provider_event_id)
);

CREATE TABLE switchboard.inbound_messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    from_e164           text NOT NULL,
    to_e164             text NOT NULL,
    body                text,
    webhook_id          bigint REFERENCES switchboard.inbound_webhooks (id),
    received_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_message_id)
);

CREATE TABLE switchboard.dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          bigint NOT NULL,
    kind            text NOT NULL,
    queue           text NOT NULL,
    args            jsonb NOT NULL,
    errors          jsonb NOT NULL DEFAULT '[]',
    attempts        integer NOT NULL,
    max_attempts    integer NOT NULL,
    -- permanent, retries_exhausted, unavailable, unknown_kind, undecodable_args
    class           text NOT NULL,
    job_state       text NOT NULL,
    subject         text,
    state           text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'requeued', 'purged')),
    requeued_job_id bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_open_idx ON switchboard.dead_letters (kind, id) WHERE state = 'open';
CREATE INDEX dead_letters_job_idx ON switchboard.dead_letters (job_id);

-- Events to the app: final outcomes it may act on. No PHI beyond references.
CREATE TABLE switchboard.events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    subject     text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_subject_idx ON switchboard.events (subject, id);

CREATE TABLE switchboard.audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);

-- Completed jobs are short-lived and numerous: vacuum the job table early.
ALTER TABLE switchboard.river_job SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02
);

GRANT SELECT ON switchboard.events TO switchboard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA switchboard TO switchboard_worker;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA switchboard TO switchboard_worker;
GRANT SELECT ON ALL TABLES IN SCHEMA switchboard TO switchboard_operator;

-- +goose Down
ALTER TABLE switchboard.river_job RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor);
DROP TABLE switchboard.audit_log;
DROP TABLE switchboard.events;
DROP TABLE switchboard.dead_letters;
DROP TABLE switchboard.inbound_messages;
DROP TABLE switchboard.inbound_webhooks;
DROP TABLE switchboard.sms_consent;
DROP TABLE switchboard.message_events;
DROP TABLE switchboard.message_attempts;
DROP TABLE switchboard.messages;
DROP TABLE switchboard.job_kinds;
