//! The integration suite: one binary, real parts.

mod helpers;

mod api;
mod bench;
mod dead_letters;
mod delivery;
mod durable;
mod faults;
mod init;
mod layers;
mod metrics;
mod options;
mod process;
mod repository;
mod secrets;
mod shapes;
mod ui;
mod worker;
