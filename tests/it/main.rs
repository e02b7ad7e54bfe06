//! The integration tests: one binary, a fresh database per test, the same suite on every backend under
//! test (SQLite always; PostgreSQL and MySQL when their URLs are set).

mod helpers;

mod loadtest;

mod admin;
mod aggregates;
mod batch;
mod bulk;
mod cache;
mod compat;
mod corpus;
mod crud;
mod differential;
mod errors;
mod model_check;
mod models;
mod observability;
mod schema;
mod session;
mod shapes;
mod transactions;
mod transfer;
mod typed;
