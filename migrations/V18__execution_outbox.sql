-- Requests the API recorded and is publishing: a row is written with the execution's own (in
-- one statement) and deleted once RabbitMQ confirmed the request. One left after a while was
-- recorded by a control plane that stopped before the confirm (a crash, a kill): another
-- publishes the request again from the execution's row (the worker's ledger makes a second
-- copy harmless). A table of its own, a few rows at any time: the execution ledger gets no
-- column or index more, and the requests published over AMQP never touch it.
CREATE TABLE execution_outbox (
    execution_id uuid PRIMARY KEY,
    since        timestamptz NOT NULL DEFAULT now()
);
