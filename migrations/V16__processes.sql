-- The services running now, each reporting itself every few seconds: which credential keys it
-- holds (ids only), so that `reseal-credentials` refuses to seal rows under a key a running
-- process cannot open; and what `aic-control-plane fleet` lists. A process stopping cleanly
-- deletes its row; a crashed one's stops being seen and is deleted after a day.
CREATE TABLE processes (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('worker', 'control-plane')),
    host        text NOT NULL,
    version     text NOT NULL,
    key_ids     text[] NOT NULL,
    active_key  text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
