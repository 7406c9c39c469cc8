//! A sink's own section: what it is called, its options with their
//! defaults and one-line docs, how it is read and checked, and what `-p`
//! prints of it, given by the sink in one [`SinkSection`] impl.
//!
//! Config sits below the sinks and never names one: the list of sinks
//! (`crate::sink::SINKS`) is handed to [`super::load`], [`super::Config::defaults_with`]
//! and the man page as [`SinkOptions`], and every declared section's value
//! is kept in [`SinkConfigs`], where its sink finds it by type.

use std::any::Any;
use std::fmt;

use super::build::Reader;
use super::error::ConfigError;
use super::render::IniWriter;

/// One option of a sink's section.
#[derive(Debug, Clone, Copy)]
pub struct SectionOption {
    /// The option's name.
    pub name: &'static str,
    /// Its built-in default, the value the section has when the files do
    /// not set it; `None`: the section's `read` decides.
    pub default: Option<&'static str>,
    /// What it means, for the man page; `` `name` `` marks a name set in bold.
    pub doc: &'static str,
    /// What happens when it is not set, for an option that has no value of
    /// its own in what `-p` prints; `None` for every option `-p` prints.
    pub when_unset: Option<&'static str>,
}

/// A sink's section, described once by the sink: config reads, checks
/// and prints it, the man page documents it, and its sink is started with
/// its [`SinkSection::Value`]. The section is on when declared in a file.
pub trait SinkSection: Sync + 'static {
    /// The validated value the sink is started with.
    type Value: Clone + fmt::Debug + PartialEq + Send + Sync + 'static;
    /// The section's name, without brackets.
    const NAME: &'static str;
    /// What the section is for: its paragraph in the man page.
    const ABOUT: &'static str;
    /// Every option the section knows; any other is warned about.
    const OPTIONS: &'static [SectionOption];
    /// The comment lines `-p` prints, before the defaults as comments,
    /// while the section is not declared; `None`: it prints nothing then.
    const WHEN_OFF: Option<&'static str> = None;
    /// What a configuration must set in the section for it to be valid
    /// (`option = value` lines): the man page renders the defaults of a
    /// configuration that declares the section with these.
    const REQUIRED: &'static str = "";

    /// The section's value, every option checked; a bad one is refused
    /// with [`Reader::invalid`] (one line naming section, option, value).
    fn read(section: &Reader<'_>) -> Result<Self::Value, ConfigError>;

    /// Writes the options back (`-p`, `-P`) so that reading them again
    /// gives the same value.
    fn print(value: &Self::Value, out: &mut IniWriter);
}

/// [`SinkSection`] as a list holds it (`&'static dyn Section`); implemented
/// for every `SinkSection`, never by hand.
pub trait Section: Sync {
    /// [`SinkSection::NAME`].
    fn name(&self) -> &'static str;
    /// [`SinkSection::ABOUT`].
    fn about(&self) -> &'static str;
    /// [`SinkSection::OPTIONS`].
    fn options(&self) -> &'static [SectionOption];
    /// [`SinkSection::WHEN_OFF`].
    fn when_off(&self) -> Option<&'static str>;
    /// [`SinkSection::REQUIRED`].
    fn required(&self) -> &'static str;
    /// [`SinkSection::read`], its value boxed.
    fn read(&self, section: &Reader<'_>) -> Result<Box<dyn SectionValue>, ConfigError>;
    /// [`SinkSection::print`] of a value [`Section::read`] made.
    fn print(&self, value: &dyn SectionValue, out: &mut IniWriter);
}

impl<S: SinkSection> Section for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn about(&self) -> &'static str {
        S::ABOUT
    }

    fn options(&self) -> &'static [SectionOption] {
        S::OPTIONS
    }

    fn when_off(&self) -> Option<&'static str> {
        S::WHEN_OFF
    }

    fn required(&self) -> &'static str {
        S::REQUIRED
    }

    fn read(&self, section: &Reader<'_>) -> Result<Box<dyn SectionValue>, ConfigError> {
        Ok(Box::new(S::read(section)?))
    }

    fn print(&self, value: &dyn SectionValue, out: &mut IniWriter) {
        if let Some(value) = value.as_any().downcast_ref::<S::Value>() {
            S::print(value, out);
        }
    }
}

/// A section's value, whatever its type: compared, cloned and shown like
/// the rest of [`super::Config`].
pub trait SectionValue: Any + fmt::Debug + Send + Sync {
    /// For the downcast to the sink's type.
    fn as_any(&self) -> &dyn Any;
    /// A copy, boxed.
    fn clone_box(&self) -> Box<dyn SectionValue>;
    /// Equal to `other`, which may be of another type.
    fn equals(&self, other: &dyn SectionValue) -> bool;
}

impl<T: Any + Clone + fmt::Debug + PartialEq + Send + Sync> SectionValue for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn clone_box(&self) -> Box<dyn SectionValue> {
        Box::new(self.clone())
    }

    fn equals(&self, other: &dyn SectionValue) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

/// Where a sink's options are, in the order of the sinks: `-p` prints the
/// sections in this order, the man page documents them in it.
#[derive(Clone, Copy)]
pub enum SinkOptions {
    /// `[graphite]`, which config reads itself: its `namespace` and host
    /// name options make the names of every sink's lines.
    Graphite,
    /// `[kafka]`, which config reads itself: it also describes central's
    /// input and the raw snapshots topic.
    Kafka,
    /// A section of the sink's own.
    Own(&'static dyn Section),
}

impl SinkOptions {
    /// The section's name.
    pub fn name(&self) -> &'static str {
        match self {
            SinkOptions::Graphite => "graphite",
            SinkOptions::Kafka => "kafka",
            SinkOptions::Own(section) => section.name(),
        }
    }
}

impl fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.name())
    }
}

/// The sinks' sections a configuration was read with, and the values of
/// the declared ones.
#[derive(Debug, Default)]
pub struct SinkConfigs {
    /// The sinks' sections, in their order.
    sections: Vec<SinkOptions>,
    /// The declared sections of their own, in that order.
    values: Vec<(&'static str, Box<dyn SectionValue>)>,
}

impl SinkConfigs {
    /// Read with `sections`, none declared yet.
    pub(super) fn new(sections: &[SinkOptions]) -> SinkConfigs {
        SinkConfigs {
            sections: sections.to_vec(),
            values: Vec::new(),
        }
    }

    /// The sinks' sections in their order; `[graphite]` and `[kafka]`
    /// where the list puts them, else `[graphite]` first and `[kafka]` last.
    pub fn sections(&self) -> Vec<SinkOptions> {
        let has = |name| self.sections.iter().any(|s| s.name() == name);
        let mut all = Vec::with_capacity(self.sections.len() + 2);
        if !has("graphite") {
            all.push(SinkOptions::Graphite);
        }
        all.extend(self.sections.iter().copied());
        if !has("kafka") {
            all.push(SinkOptions::Kafka);
        }
        all
    }

    /// The value of section `S`, when declared.
    pub fn get<S: SinkSection>(&self) -> Option<&S::Value> {
        self.value(S::NAME)?.as_any().downcast_ref()
    }

    /// Sets (or with `None` removes) the value of section `S`, as if a
    /// file had declared it (tests).
    pub fn set<S: SinkSection>(&mut self, value: Option<S::Value>) {
        self.values.retain(|(name, _)| *name != S::NAME);
        if let Some(value) = value {
            self.values.push((S::NAME, Box::new(value)));
        }
    }

    /// The value of the declared section called `name`.
    pub(super) fn value(&self, name: &str) -> Option<&dyn SectionValue> {
        self.values
            .iter()
            .find(|(declared, _)| *declared == name)
            .map(|(_, value)| value.as_ref())
    }

    pub(super) fn push(&mut self, name: &'static str, value: Box<dyn SectionValue>) {
        self.values.push((name, value));
    }

    /// Whether a section of a sink's own is declared: that sink is on.
    pub fn any_declared(&self) -> bool {
        !self.values.is_empty()
    }

    /// The sections of the sinks' own, in order.
    pub fn own(&self) -> impl Iterator<Item = &'static dyn Section> + '_ {
        self.sections.iter().filter_map(|section| match section {
            SinkOptions::Own(own) => Some(*own),
            _ => None,
        })
    }
}

impl Clone for SinkConfigs {
    fn clone(&self) -> Self {
        SinkConfigs {
            sections: self.sections.clone(),
            values: self
                .values
                .iter()
                .map(|(name, value)| (*name, value.clone_box()))
                .collect(),
        }
    }
}

/// Two configurations are equal by their values: the same sections
/// declared with equal values (the list they were read with aside).
impl PartialEq for SinkConfigs {
    fn eq(&self, other: &Self) -> bool {
        self.values.len() == other.values.len()
            && self
                .values
                .iter()
                .all(|(name, value)| other.value(name).is_some_and(|theirs| value.equals(theirs)))
    }
}
