//! The integration tests of this crate, as one test binary (one link,
//! not one per file), with a module per area.

mod adaptation;
mod canonicalize;
mod cell_identity;
mod cli_smoke;
mod cluster;
mod common;
mod data_fetch;
mod data_root;
mod debias;
mod html_report;
mod image_folder;
mod performative;
mod resque;
mod resume_in_cell;
mod seeds_vary;
mod snapshots;
mod toy_protocol;
mod tracking;
mod tune;
mod vit;
