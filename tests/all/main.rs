//! patchsync's integration tests: one binary, real SQLite files, real CAB packages, the real
//! `patchsync` program, and the real catalogs in `../shared/data`.

mod bad_input;
mod bundles;
mod cli;
mod common;
mod crash;
mod delta;
mod disconnected;
mod export;
mod filters;
mod generator;
mod hierarchy;
mod offline;
mod pins;
mod plugins;
mod real_export;
mod rules;
mod service;
mod serving;
mod supersedence;
mod third_party;
