//! The bus's integration tests. RabbitMQ (127.0.0.1:5672, or CEZONE_TEST_AMQP_URL) and
//! PostgreSQL (see cezone_platform::testing) must be running: tests that need them fail, they
//! are never skipped. Every test uses its own prefix and deletes its queues and exchanges.

mod amqp_only;
mod contract;
mod outbox;
mod support;
