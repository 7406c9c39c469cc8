//! The process half's workers (SPEC §4): the Processor actor that runs the
//! engine on one snapshot, the quarantine for snapshots it cannot use, and
//! the trash processed snapshots leave src-dir through.

pub mod actor;
pub mod quarantine;
pub mod trash;
