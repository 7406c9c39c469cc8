//! A sink owns its configuration: a sink defined here only, with its
//! section described once ([`SinkSection`]) and added to the list of
//! sinks, is read, checked, printed by `-p` and documented in the man page,
//! with no line of the program's own changed for it.

use haproxystats::config::{
    self, Config, ConfigError, IniWriter, LoadedConfig, Reader, SectionOption, SinkOptions,
    SinkSection,
};

/// `[pager]`: a sink that exists in this test only.
struct PagerSection;

#[derive(Debug, Clone, PartialEq)]
struct PagerConfig {
    url: String,
    batch: usize,
}

impl SinkSection for PagerSection {
    type Value = PagerConfig;
    const NAME: &'static str = "pager";
    const ABOUT: &'static str = "A sink of this test only: every line paged to `url`.";
    const OPTIONS: &'static [SectionOption] = &[
        SectionOption {
            name: "url",
            default: None,
            doc: "Where the pages go.",
            when_unset: Some("none; required"),
        },
        SectionOption {
            name: "batch",
            default: Some("10"),
            doc: "Lines per page, 1 to 100.",
            when_unset: None,
        },
    ];
    const WHEN_OFF: Option<&'static str> =
        Some("# [pager] is off; declare it, with url, to page every line:\n");
    const REQUIRED: &'static str = "url = http://pager.example/\n";

    fn read(section: &Reader<'_>) -> Result<PagerConfig, ConfigError> {
        Ok(PagerConfig {
            url: section.string("url")?,
            batch: section.count_between("batch", 1, 100, "a page holds 100 lines")?,
        })
    }

    fn print(value: &PagerConfig, out: &mut IniWriter) {
        out.value("url", &value.url);
        out.value("batch", value.batch);
    }
}

/// The program's sinks and the pager: the one line a sink adds.
fn sinks() -> Vec<SinkOptions> {
    let mut sinks = haproxystats::sink::options();
    sinks.push(SinkOptions::Own(&PagerSection));
    sinks
}

fn load(text: &str) -> Result<LoadedConfig, ConfigError> {
    config::load_str(text, &sinks())
}

fn error(text: &str) -> String {
    match load(text) {
        Ok(loaded) => panic!("accepted: {:?}", loaded.config.sinks),
        Err(error) => error.to_string(),
    }
}

#[test]
fn its_section_is_read_when_declared_with_its_defaults() {
    let loaded = load("[pager]\nurl = http://p.example/\n").expect("valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.sinks.get::<PagerSection>(),
        Some(&PagerConfig {
            url: "http://p.example/".to_owned(),
            batch: 10,
        })
    );
    let off = load("").expect("valid").config;
    assert_eq!(off.sinks.get::<PagerSection>(), None);
    // [DEFAULT] and interpolation apply as to every section.
    let inherited = load("[DEFAULT]\nhost = p2\n[pager]\nurl = http://${host}/\nbatch = 7\n")
        .expect("valid")
        .config;
    let pager = inherited.sinks.get::<PagerSection>().expect("declared");
    assert_eq!((pager.url.as_str(), pager.batch), ("http://p2/", 7));
}

#[test]
fn a_bad_value_is_one_line_naming_section_option_and_value() {
    let message = error("[pager]\nurl = http://p/\nbatch = 0\n");
    assert_eq!(
        message,
        "invalid configuration: [pager] batch = '0': must be at least 1"
    );
    let message = error("[pager]\nurl = http://p/\nbatch = 101\n");
    assert!(
        message.contains("[pager] batch = '101': too large (at most 100"),
        "{message}"
    );
    let message = error("[pager]\n");
    assert!(message.contains("[pager] url = ''"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    let unknown = load("[pager]\nurl = http://p/\nbatchsize = 5\n").expect("valid");
    let warnings: Vec<String> = unknown.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["configuration: [pager] batchsize: unknown option; ignored"]
    );
}

#[test]
fn it_counts_as_a_sink_and_the_message_without_one_names_it() {
    let alone = load("[graphite]\nenabled = false\n[pager]\nurl = http://p/\n");
    assert!(alone.is_ok(), "{:?}", alone.err());
    let none = error("[graphite]\nenabled = false\n");
    assert!(
        none.contains(
            "none of [local-store], [kafka], [prometheus], [remote-write], [pager]: no sink is left"
        ),
        "{none}"
    );
}

#[test]
fn dash_p_prints_its_defaults_commented_and_dash_cap_p_its_values() {
    let defaults = Config::defaults_with(&sinks()).to_ini();
    // Last: the pager is the last sink, [central] and the groups are off.
    assert!(
        defaults.ends_with(
            "\n\n# [pager] is off; declare it, with url, to page every line:\n# [pager]\n# batch = 10\n"
        ),
        "{defaults}"
    );
    let on = load("[pager]\nurl = http://p/\nbatch = 3\n").expect("valid");
    let printed = on.config.to_ini();
    assert!(
        printed.contains("\n[pager]\nurl = http://p/\nbatch = 3\n"),
        "{printed}"
    );
    let again = load(&printed).expect("printed back");
    assert_eq!(again.config, on.config);
}

#[test]
fn the_man_page_documents_it_with_its_defaults() {
    let page = haproxystats::manual::main_page_with(&sinks()).expect("man page");
    let page = String::from_utf8(page).expect("utf-8").replace("\\-", "-");
    for want in [
        ".SS [pager]\nA sink of this test only: every line paged to \\fBurl\\fR.\n",
        "\\fBurl\\fR (default: none; required)\nWhere the pages go.\n",
        "\\fBbatch\\fR (default: 10)\nLines per page, 1 to 100.\n",
    ] {
        assert!(page.contains(want), "{want:?} missing");
    }
    let without =
        haproxystats::manual::main_page_with(&haproxystats::sink::options()).expect("man page");
    assert!(!String::from_utf8_lossy(&without).contains("[pager]"));
}
