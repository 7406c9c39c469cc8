//! Which `show stat` columns a raw snapshot carries (`[kafka]
//! snapshot-fields`, SPEC §5: "one column per header field the engine or a
//! user needs"). A value of the configuration; [`crate::raw`] encodes by
//! it.

use std::fmt;

/// The columns [`crate::raw::encode_fields`] keeps, always in header order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fields {
    /// Every column the engine reads under any options (so a central
    /// configured with other `*-metrics` than the edge still finds its
    /// columns) plus the names and statuses ([`NAMES_AND_STATUSES`]).
    /// Filling and compressing the other half of the columns is most of
    /// what an edge would spend on them.
    #[default]
    Engine,
    /// Every column of the header.
    All,
}

/// The columns of [`Fields::Engine`] besides what the engine reads: what a
/// user of the topic needs to tell rows and their state apart.
pub const NAMES_AND_STATUSES: &[&str] = &["pxname", "svname", "type", "status", "check_status"];

impl Fields {
    /// Every value, in the order the configuration documents them.
    pub const ALL: [Fields; 2] = [Fields::Engine, Fields::All];

    /// The configuration value.
    pub fn name(self) -> &'static str {
        match self {
            Fields::Engine => "engine",
            Fields::All => "all",
        }
    }

    /// The value named `name` in the configuration.
    pub fn parse(name: &str) -> Option<Fields> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the column `name` is sent.
    pub fn keeps(self, name: &str) -> bool {
        match self {
            Fields::All => true,
            Fields::Engine => {
                NAMES_AND_STATUSES.contains(&name)
                    || crate::catalogue::columns_ever_read().any(|c| c == name)
            }
        }
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
