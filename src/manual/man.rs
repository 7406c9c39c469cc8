//! The man pages: `haproxystats(1)` from the CLI definition (clap_mangen)
//! plus the configuration reference, the differences from the original and
//! the sections a daemon's page needs; one page per subcommand
//! (`haproxystats-pull(1)`, also the name the binary answers to, and so on).

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, roman};

use super::ManualError;
use super::{differences, options};
use crate::cli::Cli;
use crate::config::{DEFAULT_CONFIG_FILE, SinkOptions};

/// `(file name, roff)` of every page.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>, ManualError> {
    let command = command();
    let mut pages = vec![(
        "haproxystats.1".to_owned(),
        main_page(&command, &crate::sink::options())?,
    )];
    for sub in command.get_subcommands() {
        let man = Man::new(sub.clone());
        let mut page = Vec::new();
        man.render(&mut page)?;
        let mut see_also = Roff::new();
        see_also.control("SH", ["SEE ALSO"]);
        see_also.text([bold("haproxystats"), roman("(1)")]);
        see_also.to_writer(&mut page)?;
        pages.push((man.get_filename(), page));
    }
    Ok(pages)
}

/// The CLI definition the pages document.
fn command() -> clap::Command {
    // `help` is clap's, documented by every page's --help; no page of its own.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

/// `haproxystats(1)`, documenting the sinks' sections `sinks`.
pub fn main_page_with(sinks: &[SinkOptions]) -> Result<Vec<u8>, ManualError> {
    main_page(&command(), sinks)
}

fn main_page(command: &clap::Command, sinks: &[SinkOptions]) -> Result<Vec<u8>, ManualError> {
    let man = Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut roff = Roff::new();
    program_names(&mut roff);
    configuration(&mut roff, sinks)?;
    differences(&mut roff);
    environment_files_exit_status(&mut roff);
    roff.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Text with `` `code` `` spans set in bold.
fn inlines(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.text(inlines(text));
}

fn tagged(roff: &mut Roff, tag: Vec<Inline>, text: &str) {
    roff.control("TP", []);
    roff.text(tag);
    roff.text(inlines(text));
}

fn program_names(roff: &mut Roff) {
    roff.control("SH", ["PROGRAM NAMES"]);
    paragraph(
        roff,
        "Run as `haproxystats-pull` or `haproxystats-process` (symbolic links to \
         `haproxystats`), the program behaves as `haproxystats pull` or \
         `haproxystats process`: the two programs of the Python haproxystats it replaces.",
    );
}

fn configuration(roff: &mut Roff, sinks: &[SinkOptions]) -> Result<(), ManualError> {
    roff.control("SH", ["CONFIGURATION"]);
    paragraph(
        roff,
        &format!(
            "An INI file, `{DEFAULT_CONFIG_FILE}` unless `-f` names another; when that \
             default file is missing, every option takes its default. With `-d DIR`, every \
             `*.conf` file in DIR is read after it, in sorted order, and later values win."
        ),
    );
    paragraph(
        roff,
        "It is read like the original's, by Python's ConfigParser with \
         ExtendedInterpolation: `[DEFAULT]` keys are inherited by every section, `${key}` \
         and `${section:key}` are replaced by those values, `$$` is a dollar sign, lines \
         starting with `#` or `;` are comments. Booleans are 1/yes/true/on or \
         0/no/false/off; durations are seconds, fractions allowed. An unknown option is \
         warned about and ignored; a bad value stops the program with exit status 2 and \
         one line naming section, option, value and reason.",
    );
    paragraph(
        roff,
        "`haproxystats -p` prints every default; `haproxystats -f FILE -P` validates FILE \
         and prints what it means. The defaults below are the ones `-p` prints.",
    );
    paragraph(
        roff,
        &format!(
            "Names: every name that becomes a Graphite path element (`[kafka] lb-name` and \
             `cluster`, group names, each dot-separated element of `namespace`, \
             `group-namespace` and `cluster-namespace`, and the `lb` and `cluster` headers \
             central reads) is 1 to {} bytes of `{}`, the characters Graphite stores as a \
             plain path element: `.` separates elements, blanks end a line, carbon stores \
             `;` as a tag, `* ? [ ] {{ }}` are query globs, `/` is a directory in carbon's \
             tree, and carbon refuses a longer element. Any other name is refused, at \
             start with exit status 2 (`-P` too), in central as a bad message.",
            crate::names::MAX_LEN,
            crate::names::ALLOWED,
        ),
    );
    let documented = options::with_defaults(sinks)?;
    for (section, about) in options::documented_sections(sinks) {
        roff.control("SS", [format!("[{section}]").as_str()]);
        roff.text(inlines(about));
        for (doc, default) in documented.iter().filter(|(doc, _)| doc.section == section) {
            let tag = vec![
                bold(doc.option),
                roman(" (default: "),
                roman(default.as_str()),
                roman(")"),
            ];
            tagged(roff, tag, doc.text);
        }
    }
    roff.control(
        "SS",
        ["[frontend-groups], [backend-groups], [server-groups]"],
    );
    roff.text(inlines(
        "Each line `name = regex` declares a group; a frontend, backend or server whose \
         name matches the regular expression anywhere belongs to the first group that \
         matches (servers follow their backend); the group's name is a name (see Names \
         above). Group sections need `[graphite] group-namespace`.",
    ));
    Ok(())
}

fn differences(roff: &mut Roff) {
    roff.control("SH", ["DIFFERENCES FROM THE ORIGINAL"]);
    roff.text(inlines(
        "Deliberate differences from the Python haproxystats, whose configuration files \
         work unchanged:",
    ));
    for item in differences::from_readme() {
        roff.control("IP", ["\\(bu", "2"]);
        roff.text(inlines(&item));
    }
}

fn environment_files_exit_status(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    tagged(
        roff,
        vec![bold("HAPROXYSTATS_LOG")],
        "Overrides the `loglevel` options with a tracing EnvFilter directive, e.g. \
         `haproxystats::engine=debug`.",
    );
    roff.control("SH", ["FILES"]);
    for (file, text) in [
        (DEFAULT_CONFIG_FILE, "The configuration."),
        (
            "/var/lib/haproxystats",
            "`[paths] base-dir`: snapshots waiting to be processed (`incoming`), the \
             quarantine of unprocessable ones (`incoming.failed`) and the status file \
             `haproxystats.status` that `haproxystats check` reads.",
        ),
        (
            "/usr/lib/systemd/system/haproxystats.service",
            "The unit of the supervisor (`Type=notify`, watchdog); \
             `haproxystats-central.service` runs `haproxystats central`.",
        ),
    ] {
        tagged(roff, vec![italic_path(file)], text);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, text) in [
        (
            "0",
            "Success, also after SIGTERM, SIGINT or SIGHUP and a clean drain.",
        ),
        (
            "1",
            "A failure at run time: a directory it cannot use, a child crashing too often, \
             a snapshot directory `replay` cannot process.",
        ),
        ("2", "A bad command line or configuration."),
    ] {
        tagged(roff, vec![bold(code)], text);
    }
    paragraph(
        roff,
        "`haproxystats check` is a Nagios plugin and exits 0, 1, 2 or 3 (OK, WARNING, \
         CRITICAL, UNKNOWN); see `haproxystats-check`(1).",
    );
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("haproxystats-pull"),
        roman("(1), "),
        bold("haproxystats-process"),
        roman("(1), "),
        bold("haproxystats-replay"),
        roman("(1), "),
        bold("haproxystats-check"),
        roman("(1), "),
        bold("haproxystats-central"),
        roman("(1), "),
        bold("haproxy"),
        roman("(1), "),
        bold("systemctl"),
        roman("(1)"),
    ]);
}

fn italic_path(path: &str) -> Inline {
    clap_mangen::roff::italic(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        let pages = match pages() {
            Ok(pages) => pages,
            Err(error) => panic!("no pages: {error}"),
        };
        let Some((_, roff)) = pages.into_iter().find(|(file, _)| file == name) else {
            panic!("no page {name}")
        };
        String::from_utf8(roff).unwrap_or_default()
    }

    #[test]
    fn one_page_per_subcommand_besides_the_main_one() {
        let names: Vec<String> = pages()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        for want in [
            "haproxystats.1",
            "haproxystats-pull.1",
            "haproxystats-process.1",
            "haproxystats-central.1",
            "haproxystats-replay.1",
            "haproxystats-check.1",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }

    #[test]
    fn the_main_page_documents_every_option_with_the_default_dash_p_prints() {
        let page = page("haproxystats.1");
        for heading in [
            ".SH CONFIGURATION",
            ".SH \"DIFFERENCES FROM THE ORIGINAL\"",
            ".SH FILES",
        ] {
            assert!(page.contains(heading), "{heading} missing");
        }
        // roff escapes dashes; compare with them unescaped.
        let page = page.replace("\\-", "-");
        let printed = crate::config::Config::defaults_with(&crate::sink::options()).to_ini();
        for (section, option, value) in options::ini_values(&printed) {
            assert!(
                page.contains(&format!(".SS [{section}]")),
                "[{section}] missing"
            );
            if !value.is_empty() {
                let tag = format!("\\fB{option}\\fR (default: {value})");
                assert!(page.contains(&tag), "[{section}] {tag} missing");
            }
        }
    }

    #[test]
    fn subcommand_pages_carry_their_options() {
        let check = page("haproxystats-check.1").replace("\\-", "-");
        assert!(check.contains("--queue-warning"), "{check}");
        assert!(check.contains(".TH haproxystats-check 1"), "{check}");
    }

    #[test]
    fn code_spans_are_bold() {
        assert_eq!(
            inlines("a `b` c"),
            vec![roman("a "), bold("b"), roman(" c")]
        );
    }
}
