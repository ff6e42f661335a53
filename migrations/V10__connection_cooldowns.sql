-- Cool-downs of a part of a connection: where a vendor's rate limit applies per channel (Slack,
-- about one message a second per channel; a template's rate_limit_scope), a Retry-After holds
-- only the calls in that scope (e.g. 'channel:C0123'), not the whole connection as
-- connections.throttled_until does. Workers clear expired rows when they renew their leases.
CREATE TABLE connection_cooldowns (
    connection_id uuid NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    scope         text NOT NULL,
    until         timestamptz NOT NULL,
    reason        text NOT NULL,
    PRIMARY KEY (connection_id, scope)
);
