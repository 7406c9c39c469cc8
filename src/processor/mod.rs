//! The process half's workers (SPEC §4): the Processor actor that runs the
//! engine on one snapshot, and the quarantine for snapshots it cannot use.

pub mod actor;
pub mod quarantine;
