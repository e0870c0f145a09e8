//! zend: the zen daemon, as a library so tests can run it in-process.
//!
//! # Layout
//! - [`server`]: lifecycle — lock, store, socket, `run(listener, daemon)`, shutdown.
//! - [`ipc`]: the `zen.v1.Zend` gRPC service; peer-credential checks.
//! - [`mcp`]: one rmcp server per Session stream; the frame transport.
//! - [`providers`]: every model call — registry, wire adapters, retries, fallbacks, cost.
//! - [`tools`]: the `Tool` trait, the registry and the built-in tools.
//! - [`daemon`]: the state every session shares; [`sessions`]: who is connected;
//!   [`upgrade`]: an auto-started zend replacing itself for a newer shim.
//! - [`data`]: the store with memory and the ledger built beside it;
//!   [`store`]: the redb database and its single writer; [`memory`]:
//!   conversation threads; [`ledger`]: cost records, totals and budgets;
//!   [`time`]: timestamps and the clock.
//! - [`config`], [`locations`], [`logging`]: configuration as data, directories, logs;
//!   [`watcher`]: config edits reloaded live.
//! - [`hardening`]: umask 077, no core dumps, `/` as working directory, private files.
//! - [`cli`], [`client`]: subcommands that talk to a running zend.
//! - [`malloc`]: heap memory given back when the last session closes.
//! - [`activation`], [`service`]: socket activation; `zend service install|uninstall|status`.
//! - [`register`], [`logs`]: `zend register <client>`, `zend logs`.

pub mod access;
pub mod activation;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod data;
pub mod hardening;
pub mod ipc;
pub mod ledger;
pub mod locations;
pub mod logging;
pub mod logs;
pub mod malloc;
pub mod mcp;
pub mod memory;
pub mod providers;
pub mod register;
pub mod server;
pub mod service;
pub mod sessions;
pub mod store;
pub mod time;
pub mod tools;
pub mod upgrade;
pub mod util;
pub mod watcher;

#[cfg(test)]
mod tidy;
