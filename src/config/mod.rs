//! Configuration: INI files → one validated [`Config`] (SPEC §2).

mod model;

pub use model::*;
